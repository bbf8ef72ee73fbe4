#!/usr/bin/env python3
"""Writes an OCI image layout for benchmarks: a busybox layer (static
busybox, applet symlinks, /etc/passwd, /tmp 1777 ...) plus N layers of
random (incompressible) or compressible data, gzip-compressed.

Usage: oci_layout.py OUT_DIR [--tag T] [--layers N] [--layer-mb M]
                             [--fill random|compressible] [--busybox PATH]

Everything is streamed: no layer is held in memory.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile

MTIME = 1704067200  # 2024-01-01, fixed so the busybox layer is reproducible
APPLETS = ["[", "cat", "cp", "echo", "env", "false", "grep", "id", "ls",
           "mkdir", "mv", "ps", "pwd", "rm", "sed", "sh", "sleep", "tail",
           "test", "touch", "true", "uname", "wc"]
PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = b"root:x:0:\nnobody:x:65534:\n"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through."""

    def __init__(self, inner):
        self.inner, self.sha, self.size = inner, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)

    def digest(self):
        return "sha256:" + self.sha.hexdigest()


class Data(io.RawIOBase):
    """Generates `size` bytes: random, or numbered text lines."""

    def __init__(self, size, fill):
        self.left, self.fill, self.line = size, fill, 0

    def readable(self):
        return True

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        if self.fill == "random":
            out = os.urandom(n)
        else:
            parts, total = [], 0
            while total < n:
                self.line += 1
                text = b"servin bench compressible line %012d\n" % self.line
                parts.append(text)
                total += len(text)
            out = b"".join(parts)[:n]
        self.left -= len(out)
        return out


def info(name, kind=tarfile.REGTYPE, mode=0o644, size=0, link=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname = kind, mode, size, link
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "root", "root"
    return ti


def write_layer(blobs, level, fill_tar):
    """Streams a tar through gzip into blobs/; returns (digest, size, diff_id)."""
    fd, tmp = tempfile.mkstemp(dir=blobs)
    with os.fdopen(fd, "wb") as f:
        blob = Hashing(f)
        with gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=level, mtime=0) as gz:
            raw = Hashing(gz)
            with tarfile.open(fileobj=raw, mode="w|", format=tarfile.GNU_FORMAT) as tar:
                fill_tar(tar)
        f.flush()
        os.fsync(f.fileno())
    digest = blob.digest()
    os.rename(tmp, os.path.join(blobs, digest[7:]))
    return {"digest": digest, "size": blob.size, "diff_id": raw.digest()}


def write_blob(blobs, obj):
    data = json.dumps(obj, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest[7:]), "wb") as f:
        f.write(data)
    return {"digest": digest, "size": len(data)}


def busybox_tree(path):
    def fill(tar):
        tar.addfile(info("bin/", tarfile.DIRTYPE, 0o755))
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            tar.addfile(info("bin/busybox", mode=0o755, size=size), f)
        for applet in APPLETS:
            tar.addfile(info("bin/" + applet, tarfile.SYMTYPE, 0o777, link="busybox"))
        for d, mode in [("dev/", 0o755), ("etc/", 0o755)]:
            tar.addfile(info(d, tarfile.DIRTYPE, mode))
        for name, text in [("etc/group", GROUP), ("etc/passwd", PASSWD)]:
            tar.addfile(info(name, size=len(text)), io.BytesIO(text))
        for d, mode in [("proc/", 0o555), ("root/", 0o700), ("sys/", 0o555), ("tmp/", 0o1777)]:
            tar.addfile(info(d, tarfile.DIRTYPE, mode))
    return fill


def data_tree(index, size, fill_kind):
    def fill(tar):
        tar.addfile(info("data/", tarfile.DIRTYPE, 0o755))
        tar.addfile(info("data/layer-%d.bin" % index, size=size), Data(size, fill_kind))
    return fill


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--tag", default="latest")
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--layer-mb", type=float, default=20)
    p.add_argument("--fill", choices=["random", "compressible"], default="random")
    p.add_argument("--busybox", default="/bin/busybox")
    a = p.parse_args()

    blobs = os.path.join(a.out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    layers = [write_layer(blobs, 6, busybox_tree(a.busybox))]
    for i in range(1, a.layers + 1):
        size = int(a.layer_mb * 1024 * 1024)
        # Random data does not compress: level 1 is as small and much faster.
        level = 1 if a.fill == "random" else 6
        layers.append(write_layer(blobs, level, data_tree(i, size, a.fill)))

    created = "2024-01-01T00:00:00Z"
    config = write_blob(blobs, {
        "created": created, "architecture": "amd64", "os": "linux",
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
        "history": [{"created": created, "created_by": "bench layer %d" % i}
                    for i in range(len(layers))],
    })
    manifest = write_blob(blobs, {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": l["digest"], "size": l["size"]} for l in layers],
    })
    with open(os.path.join(a.out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(a.out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2,
                   "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  **manifest,
                                  "annotations": {"org.opencontainers.image.ref.name": a.tag}}]},
                  f)
    total = sum(l["size"] for l in layers)
    # One line for the caller: config digest (the image ID) and blob bytes.
    print(config["digest"], total)


if __name__ == "__main__":
    main()
