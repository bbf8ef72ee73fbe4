//! Engine events, in Docker's shape (`Type`, `Action`, `Actor`).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventActor {
    pub id: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `image`, `container`, `volume`, `network`, `daemon`.
    pub kind: &'static str,
    pub action: String,
    pub actor: EventActor,
    /// Nanoseconds since the Unix epoch.
    pub time_nano: i64,
}

impl Event {
    pub fn image(action: &str, id: &str, name: Option<&str>) -> Self {
        let mut attributes = BTreeMap::new();
        if let Some(n) = name {
            attributes.insert("name".to_string(), n.to_string());
        }
        Self {
            kind: "image",
            action: action.to_string(),
            actor: EventActor {
                id: id.to_string(),
                attributes,
            },
            time_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        }
    }

    /// The event as Docker's `/events` stream sends it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": self.action,
            "id": self.actor.id,
            "from": self.actor.attributes.get("image"),
            "Type": self.kind,
            "Action": self.action,
            "Actor": {"ID": self.actor.id, "Attributes": self.actor.attributes},
            "scope": "local",
            "time": self.time_nano / 1_000_000_000,
            "timeNano": self.time_nano,
        })
    }
}
