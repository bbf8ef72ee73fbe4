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

    pub fn container(action: &str, id: &str, rec: &crate::containers::ContainerRecord) -> Self {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), rec.name.clone());
        attributes.insert("image".to_string(), rec.image.clone());
        if let Some(labels) = rec.config["Labels"].as_object() {
            for (k, v) in labels {
                if let Some(v) = v.as_str() {
                    attributes.insert(k.clone(), v.to_string());
                }
            }
        }
        if action == "die" {
            if let crate::containers::State::Exited { code, .. } = &rec.state {
                attributes.insert("exitCode".to_string(), code.to_string());
            }
        }
        Self {
            kind: "container",
            action: action.to_string(),
            actor: EventActor {
                id: id.to_string(),
                attributes,
            },
            time_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        }
    }

    pub fn volume(action: &str, name: &str) -> Self {
        let mut e = Self::image(action, name, None);
        e.kind = "volume";
        e.actor.attributes.insert("driver".into(), "local".into());
        e
    }

    /// Adds an attribute.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.actor
            .attributes
            .insert(key.to_string(), value.to_string());
        self
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
