//! Fan-out of committed updates inside one gateway replica: the updates consumer
//! publishes each [`EvaluationUpdate`] once, every WebSocket session filters for its own
//! evaluation. A session that falls behind is told it lagged and refills from PostgreSQL.

use airlock_core::messages::EvaluationUpdate;
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<EvaluationUpdate>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    pub fn publish(&self, update: EvaluationUpdate) {
        // No receiver simply means nobody is watching.
        let _ = self.sender.send(Arc::new(update));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EvaluationUpdate>> {
        self.sender.subscribe()
    }
}
