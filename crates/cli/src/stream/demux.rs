//! Docker's multiplexed stream (`stdcopy`): frames of an 8-byte header
//! `[stream, 0, 0, 0, size (big endian u32)]` and `size` bytes of payload.

use bytes::{Buf as _, Bytes, BytesMut};

/// Which stream a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Stdin echoes go to stdout, as `stdcopy` does.
    Stdout,
    Stderr,
}

/// A complete frame, or the end of usable input.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Data(Stream, Bytes),
    /// Stream 3: the daemon reports an error inside the stream.
    SystemError(String),
}

const HEADER: usize = 8;

/// Takes the next complete frame off the front of `buf`, if there is one.
/// Errors are `stdcopy`'s ("Unrecognized input header: 7").
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>, String> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let kind = buf[0];
    let size = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if !matches!(kind, 0..=3) {
        return Err(format!("Unrecognized input header: {kind}"));
    }
    if buf.len() < HEADER + size {
        return Ok(None);
    }
    buf.advance(HEADER);
    let payload = buf.split_to(size).freeze();
    Ok(Some(match kind {
        0 | 1 => Frame::Data(Stream::Stdout, payload),
        2 => Frame::Data(Stream::Stderr, payload),
        _ => Frame::SystemError(format!(
            "error from daemon in stream: {}",
            String::from_utf8_lossy(&payload)
        )),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn splits_frames_across_reads() {
        let mut wire = frame(1, b"out\n");
        wire.extend(frame(2, b"err\n"));
        wire.extend(frame(0, b""));
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        // Feed one byte at a time: frames come out only when complete.
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(f) = next_frame(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame::Data(Stream::Stdout, Bytes::from_static(b"out\n")),
                Frame::Data(Stream::Stderr, Bytes::from_static(b"err\n")),
                Frame::Data(Stream::Stdout, Bytes::new()),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn errors_like_stdcopy() {
        let mut buf = BytesMut::from(&frame(3, b"boom")[..]);
        assert_eq!(
            next_frame(&mut buf).unwrap(),
            Some(Frame::SystemError(
                "error from daemon in stream: boom".into()
            ))
        );
        let mut buf = BytesMut::from(&frame(7, b"x")[..]);
        assert_eq!(
            next_frame(&mut buf).unwrap_err(),
            "Unrecognized input header: 7"
        );
    }
}
