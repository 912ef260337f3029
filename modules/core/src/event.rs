//! Events emitted by modules; the app turns them into ABCI events on the tx or block result.

/// One event: a type and ordered `(key, value)` attributes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Event type, e.g. `transfer`, `magnet.registry.node_registered`.
    pub kind: String,
    /// Attributes in emission order.
    pub attributes: Vec<(String, String)>,
}

impl Event {
    /// A new event with no attributes.
    pub fn new(kind: impl Into<String>) -> Event {
        Event {
            kind: kind.into(),
            attributes: Vec::new(),
        }
    }
    /// Add an attribute (builder style).
    pub fn attr(mut self, key: impl Into<String>, value: impl ToString) -> Event {
        self.attributes.push((key.into(), value.to_string()));
        self
    }
    /// The value of the first attribute named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
