//! One server: every command goes to its node.

use super::{Key, Topology};
use crate::core::Result;
use crate::core::attempt::Target;
use crate::node::{Node, NodeRef};
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Standalone {
    node: Arc<Node>,
}

impl Standalone {
    pub fn new(node: Node) -> Standalone {
        Standalone {
            node: Arc::new(node),
        }
    }
}

impl Topology for Standalone {
    fn node(&self, _key: Key, _target: &Target) -> Result<Option<NodeRef<'_>>> {
        Ok(Some(NodeRef::Borrowed(&self.node)))
    }

    fn pinned(&self, _slot: Option<u16>) -> Result<NodeRef<'_>> {
        Ok(NodeRef::Borrowed(&self.node))
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        vec![self.node.clone()]
    }

    fn home(&self) -> &Node {
        &self.node
    }

    fn maintain(&self) {
        self.node.pool().maintain();
    }

    fn maintenance_period(&self) -> Option<Duration> {
        self.node.pool().settings().maintenance_period()
    }

    fn close(&self) {
        self.node.close();
    }

    fn is_closed(&self) -> bool {
        self.node.pool().is_closed()
    }
}
