//! The report partitions this replica consumes. Every partition queue has a single
//! active consumer (RabbitMQ's `x-single-active-consumer`): each replica subscribes to
//! the partitions assigned to it first (rendezvous hashing over the live replicas,
//! `airlock_core::replica::partitions_of`) and to all others as a standby, so a dead
//! replica's partitions move to a survivor as soon as its connection drops. When the
//! replicas change, a replica that receives reports of a partition assigned to another
//! live replica hands it over: it closes that partition's channel (its unacknowledged
//! reports return to the queue, in order) and subscribes again at the back of the line.
//!
//! Deliveries reach the batch loop through one channel, tagged with their partition and
//! the subscription's generation; a delivery of a subscription closed since is skipped
//! (the broker returned it to the queue when the channel closed).

use airlock_core::replica::REPORT_PARTITIONS;
use airlock_mq::{Channel, Connection, Delivery, topology};
use futures_util::StreamExt;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Reports each partition's consumer may hold unacknowledged.
const PREFETCH: u16 = 64;

/// The legacy (unpartitioned) report queue, consumed like a partition.
pub const LEGACY: u16 = u16::MAX;

pub enum Inbound {
    Delivery {
        partition: u16,
        generation: u64,
        delivery: Box<Delivery>,
    },
    /// A subscription's stream ended (its channel closed).
    Ended { partition: u16, generation: u64 },
}

struct Subscription {
    channel: Channel,
    generation: u64,
    last_delivery: Option<Instant>,
}

pub struct Partitions {
    tx: mpsc::Sender<Inbound>,
    subscriptions: HashMap<u16, Subscription>,
    next_generation: u64,
}

fn queue_of(partition: u16) -> String {
    if partition == LEGACY {
        topology::RUN_REPORTS_QUEUE.to_owned()
    } else {
        topology::report_partition_queue(partition)
    }
}

impl Partitions {
    pub fn new() -> (Self, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(1024);
        let partitions = Self {
            tx,
            subscriptions: HashMap::new(),
            next_generation: 1,
        };
        (partitions, rx)
    }

    /// Whether a delivery belongs to a live subscription (and notes when it came).
    pub fn accept(&mut self, partition: u16, generation: u64) -> bool {
        match self.subscriptions.get_mut(&partition) {
            Some(sub) if sub.generation == generation => {
                sub.last_delivery = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    /// Subscribes to `partition` (at the back of its line of consumers) unless this
    /// replica is subscribed already.
    pub async fn subscribe(
        &mut self,
        connection: &Connection,
        partition: u16,
    ) -> airlock_mq::Result<()> {
        if self.subscriptions.contains_key(&partition) {
            return Ok(());
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let channel = connection.create_channel().await?;
        let tag = format!("results-{partition}");
        let mut consumer =
            airlock_mq::consume_on(&channel, &queue_of(partition), PREFETCH, &tag).await?;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let inbound = Inbound::Delivery {
                    partition,
                    generation,
                    delivery: Box::new(delivery),
                };
                if tx.send(inbound).await.is_err() {
                    return;
                }
            }
            let _ = tx
                .send(Inbound::Ended {
                    partition,
                    generation,
                })
                .await;
        });
        self.subscriptions.insert(
            partition,
            Subscription {
                channel,
                generation,
                last_delivery: None,
            },
        );
        Ok(())
    }

    /// Forgets a subscription whose stream ended, so the next rebalance subscribes again.
    pub fn ended(&mut self, partition: u16, generation: u64) {
        if self
            .subscriptions
            .get(&partition)
            .is_some_and(|sub| sub.generation == generation)
        {
            self.subscriptions.remove(&partition);
        }
    }

    /// Subscribes to every partition: `mine` first (so this replica is their active
    /// consumer wherever it is first in line), then the rest as a standby, then the
    /// legacy queue. Hands over partitions of `mine`'s complement that delivered since
    /// the last rebalance, when their owner is alive.
    pub async fn rebalance(
        &mut self,
        connection: &Connection,
        mine: &[u16],
        others_alive: bool,
    ) -> airlock_mq::Result<()> {
        for partition in mine {
            self.subscribe(connection, *partition).await?;
        }
        if others_alive {
            let handing_over: Vec<u16> = self
                .subscriptions
                .iter()
                .filter(|(p, sub)| {
                    **p != LEGACY && !mine.contains(p) && sub.last_delivery.is_some()
                })
                .map(|(p, _)| *p)
                .collect();
            for partition in handing_over {
                if let Some(sub) = self.subscriptions.remove(&partition) {
                    tracing::info!(
                        partition,
                        "handing a report partition over to its assigned replica"
                    );
                    let _ = sub.channel.close(200, "partition handed over".into()).await;
                }
            }
        }
        for partition in (0..REPORT_PARTITIONS).chain(std::iter::once(LEGACY)) {
            self.subscribe(connection, partition).await?;
        }
        for sub in self.subscriptions.values_mut() {
            sub.last_delivery = None;
        }
        Ok(())
    }
}
