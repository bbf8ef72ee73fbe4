//! `lo` and `eth0` with the contract's static addresses, over netlink.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use servin_guest::contract::{GATEWAY_ADDR, GUEST_ADDR, GUEST_PREFIX_LEN};

pub fn configure() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let lo = link_index(&handle, "lo")
            .await?
            .ok_or("no loopback device")?;
        up(&handle, lo).await?;
        // virtio-net is probed asynchronously after its module loads.
        let start = Instant::now();
        let eth0 = loop {
            if let Some(i) = link_index(&handle, "eth0").await? {
                break i;
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err("no eth0: the guest has no network device".to_string());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        handle
            .address()
            .add(eth0, Ipv4Addr::from(GUEST_ADDR).into(), GUEST_PREFIX_LEN)
            .execute()
            .await
            .map_err(|e| format!("Cannot address eth0: {e}"))?;
        up(&handle, eth0).await?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(Ipv4Addr::from(GATEWAY_ADDR))
            .output_interface(eth0)
            .build();
        handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(|e| format!("Cannot add the default route: {e}"))
    })
}

async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, String> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        // The kernel answers ENODEV for a name it does not know.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(format!("Cannot list {name}: {e}")),
    }
}

async fn up(handle: &Handle, index: u32) -> Result<(), String> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| format!("Cannot bring up link {index}: {e}"))
}
