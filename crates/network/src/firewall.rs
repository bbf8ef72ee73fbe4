//! nftables rules, in one table of our own, rebuilt whole from the state on
//! every change and replaced in one transaction (`nft -j -f -` through the
//! `nftables` crate): no partial rule set is ever visible, and a restart
//! reconciles by rebuilding. Other tables are never touched.
//!
//! The host table (`ip <table>`):
//! - nat `prerouting`/`output`: traffic to a local address jumps to `ports`,
//!   where each published port is a DNAT to its container;
//! - nat `postrouting`: masquerade what leaves a (non-internal) network for
//!   elsewhere, what comes from the host's loopback (with `route_localnet`
//!   on the bridge this lets `127.0.0.1:PORT` reach a container without a
//!   userland proxy), and hairpin traffic between containers of one bridge;
//! - filter `forward` (policy accept, so the host's own policy decides
//!   everything else): drops between different networks, into or out of
//!   internal networks, and new connections from outside into a network
//!   unless DNATed to a published port.
//!
//! Inside each container's netns a table of the same name holds one DNAT:
//! `127.0.0.11:53` to the port the embedded DNS server listens on there.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, CT,
};
use nftables::helper::{apply_ruleset_with_args, NftablesError};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, Match, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::error::{Error, Result};
use crate::model::{Proto, PublishedPort};

/// The address the embedded DNS answers on inside a container, as Docker.
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// One bridge network as the rules need it.
#[derive(Debug, Clone)]
pub struct NetRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
    /// Outbound NAT (`enable_ip_masquerade`, on unless turned off).
    pub masquerade: bool,
}

/// One endpoint's published ports.
#[derive(Debug, Clone)]
pub struct PortRules {
    pub ip: Ipv4Addr,
    pub ports: Vec<PublishedPort>,
}

fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(v.into()))
}

fn m(left: Expression<'static>, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &str, field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Owned(protocol.into()),
            field: Cow::Owned(field.into()),
        },
    )))
}

fn ct(key: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Owned(key.into()),
        family: None,
        dir: None,
    }))
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(net.network().to_string())),
        len: u32::from(net.prefix_len()),
    }))
}

fn fib_local() -> Statement<'static> {
    m(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([FibFlag::Daddr]),
        })),
        Operator::EQ,
        s("local"),
    )
}

fn iif(name: &str, op: Operator) -> Statement<'static> {
    m(meta(MetaKey::Iifname), op, s(name))
}

fn oif(name: &str, op: Operator) -> Statement<'static> {
    m(meta(MetaKey::Oifname), op, s(name))
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(None)
}

fn drop() -> Statement<'static> {
    Statement::Drop(None)
}

fn dnat(ip: Ipv4Addr, port: u16) -> Statement<'static> {
    Statement::DNAT(Some(NAT {
        addr: Some(s(ip.to_string())),
        family: None,
        port: Some(Expression::Number(u32::from(port))),
        flags: None,
    }))
}

struct Builder<'t> {
    table: &'t str,
    batch: Batch<'static>,
}

impl Builder<'_> {
    fn chain(&mut self, name: &str, hook: Option<(NfChainType, NfHook, i32)>) {
        let (ty, hook, prio) = match hook {
            Some((t, h, p)) => (Some(t), Some(h), Some(p)),
            None => (None, None, None),
        };
        self.batch.add(NfListObject::Chain(Chain {
            family: NfFamily::IP,
            table: Cow::Owned(self.table.into()),
            name: Cow::Owned(name.into()),
            _type: ty,
            hook,
            prio,
            policy: hook.map(|_| NfChainPolicy::Accept),
            ..Chain::default()
        }));
    }

    fn rule(&mut self, chain: &str, expr: Vec<Statement<'static>>) {
        self.batch.add(NfListObject::Rule(Rule {
            family: NfFamily::IP,
            table: Cow::Owned(self.table.into()),
            chain: Cow::Owned(chain.into()),
            expr: Cow::Owned(expr),
            ..Rule::default()
        }));
    }
}

fn table(name: &str) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: NfFamily::IP,
        name: Cow::Owned(name.into()),
        handle: None,
    })
}

/// Adding then deleting makes the delete succeed whether or not the table
/// was there; both stay inside the one transaction.
fn replace_table(batch: &mut Batch<'static>, name: &str) {
    batch.add(table(name));
    batch.delete(table(name));
}

/// The host rule set for these networks and endpoints; `None` when there
/// is nothing to install (the table is then removed).
pub fn host_rules(table_name: &str, nets: &[NetRules], eps: &[PortRules]) -> Nftables<'static> {
    let mut b = Builder {
        table: table_name,
        batch: Batch::new(),
    };
    replace_table(&mut b.batch, table_name);
    if nets.is_empty() {
        return b.batch.to_nftables();
    }
    b.batch.add(table(table_name));
    b.chain("ports", None);
    b.chain(
        "prerouting",
        Some((NfChainType::NAT, NfHook::Prerouting, -100)),
    );
    b.chain("output", Some((NfChainType::NAT, NfHook::Output, -100)));
    b.chain(
        "postrouting",
        Some((NfChainType::NAT, NfHook::Postrouting, 100)),
    );
    b.chain("forward", Some((NfChainType::Filter, NfHook::Forward, 0)));
    let jump = Statement::Jump(JumpTarget {
        target: Cow::Borrowed("ports"),
    });
    b.rule("prerouting", vec![fib_local(), jump.clone()]);
    b.rule("output", vec![fib_local(), jump]);

    for ep in eps {
        for p in &ep.ports {
            let mut expr = Vec::new();
            if !p.host_ip.is_unspecified() {
                expr.push(m(
                    payload("ip", "daddr"),
                    Operator::EQ,
                    s(p.host_ip.to_string()),
                ));
            }
            expr.push(m(
                payload(p.proto.as_str(), "dport"),
                Operator::EQ,
                Expression::Number(u32::from(p.host_port)),
            ));
            expr.push(dnat(ep.ip, p.container_port));
            b.rule("ports", expr);
        }
    }

    for n in nets {
        if !n.internal && n.masquerade {
            b.rule(
                "postrouting",
                vec![
                    m(payload("ip", "saddr"), Operator::EQ, prefix(n.subnet)),
                    oif(&n.bridge, Operator::NEQ),
                    masquerade(),
                ],
            );
        }
        let loopback = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("valid prefix");
        b.rule(
            "postrouting",
            vec![
                oif(&n.bridge, Operator::EQ),
                m(payload("ip", "saddr"), Operator::EQ, prefix(loopback)),
                masquerade(),
            ],
        );
        b.rule(
            "postrouting",
            vec![
                oif(&n.bridge, Operator::EQ),
                iif(&n.bridge, Operator::EQ),
                m(ct("status"), Operator::IN, s("dnat")),
                masquerade(),
            ],
        );

        for other in nets.iter().filter(|o| o.bridge != n.bridge) {
            b.rule(
                "forward",
                vec![
                    iif(&n.bridge, Operator::EQ),
                    oif(&other.bridge, Operator::EQ),
                    drop(),
                ],
            );
        }
        if n.internal {
            b.rule(
                "forward",
                vec![
                    iif(&n.bridge, Operator::EQ),
                    oif(&n.bridge, Operator::NEQ),
                    drop(),
                ],
            );
            b.rule(
                "forward",
                vec![
                    oif(&n.bridge, Operator::EQ),
                    iif(&n.bridge, Operator::NEQ),
                    drop(),
                ],
            );
        } else {
            b.rule(
                "forward",
                vec![
                    oif(&n.bridge, Operator::EQ),
                    m(ct("status"), Operator::IN, s("dnat")),
                    Statement::Accept(None),
                ],
            );
            b.rule(
                "forward",
                vec![
                    oif(&n.bridge, Operator::EQ),
                    iif(&n.bridge, Operator::NEQ),
                    m(ct("state"), Operator::IN, s("new")),
                    drop(),
                ],
            );
        }
    }
    b.batch.to_nftables()
}

/// The rule set inside a container's netns: 127.0.0.11:53 (UDP and TCP) to
/// the embedded DNS server's `port`.
pub fn dns_rules(table_name: &str, port: u16) -> Nftables<'static> {
    let mut b = Builder {
        table: table_name,
        batch: Batch::new(),
    };
    replace_table(&mut b.batch, table_name);
    b.batch.add(table(table_name));
    b.chain("output", Some((NfChainType::NAT, NfHook::Output, -100)));
    for proto in [Proto::Udp, Proto::Tcp] {
        b.rule(
            "output",
            vec![
                m(
                    payload("ip", "daddr"),
                    Operator::EQ,
                    s(DNS_ADDR.to_string()),
                ),
                m(
                    payload(proto.as_str(), "dport"),
                    Operator::EQ,
                    Expression::Number(53),
                ),
                dnat(DNS_ADDR, port),
            ],
        );
    }
    b.batch.to_nftables()
}

/// Applies a rule set on the host, or inside the netns at `netns`.
pub async fn apply(table_name: &str, rules: Nftables<'static>, netns: Option<&Path>) -> Result<()> {
    let ns_arg = netns.map(|p| format!("--net={}", p.display()));
    let table_name = table_name.to_string();
    let res = tokio::task::spawn_blocking(move || -> Result<(), NftablesError> {
        match ns_arg {
            None => apply_ruleset_with_args(&rules, Some("nft"), &[] as &[&str]),
            Some(arg) => apply_ruleset_with_args(&rules, Some("nsenter"), &[arg.as_str(), "nft"]),
        }
    })
    .await
    .expect("nft task does not panic");
    res.map_err(|source| Error::Nft {
        table: table_name,
        source,
    })
}

/// Removes the table; a missing table is not an error.
pub async fn remove(table_name: &str, netns: Option<&Path>) -> Result<()> {
    let mut batch = Batch::new();
    replace_table(&mut batch, table_name);
    apply(table_name, batch.to_nftables(), netns).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_become_dnat_rules() {
        let nets = [NetRules {
            bridge: "br-a".into(),
            subnet: "10.1.0.0/24".parse().unwrap(),
            internal: false,
            masquerade: true,
        }];
        let eps = [PortRules {
            ip: Ipv4Addr::new(10, 1, 0, 2),
            ports: vec![PublishedPort {
                proto: Proto::Udp,
                container_port: 53,
                host_ip: Ipv4Addr::LOCALHOST,
                host_port: 5353,
                v6: false,
            }],
        }];
        let json = serde_json::to_string(&host_rules("t", &nets, &eps)).unwrap();
        assert!(
            json.contains(r#"{"dnat":{"addr":"10.1.0.2","port":53}}"#),
            "{json}"
        );
        assert!(json.contains(r#""right":5353"#), "{json}");
        assert!(
            json.contains(r#""protocol":"udp","field":"dport""#),
            "{json}"
        );
        assert!(json.contains(r#""right":"127.0.0.1""#), "{json}");
        assert!(json.contains(r#"{"masquerade":null}"#), "{json}");
    }

    #[test]
    fn no_networks_means_no_table() {
        let json = serde_json::to_string(&host_rules("t", &[], &[])).unwrap();
        assert!(json.contains(r#"{"delete":{"table""#), "{json}");
        assert!(!json.contains("chain"), "{json}");
    }
}
