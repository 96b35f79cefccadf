//! A fresh database and a fresh RabbitMQ virtual host for one test, so tests share
//! nothing and may run in parallel.

use sqlx::Connection;
use std::process::Command;

/// The PostgreSQL server tests use; override with AIRLOCK_TEST_DATABASE_URL (without a
/// database name at the end).
pub fn postgres_server() -> String {
    std::env::var("AIRLOCK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("airlock_test_{}", uuid::Uuid::new_v4().simple());
        let server = postgres_server();
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("connect to PostgreSQL (is it running on 127.0.0.1:5432?)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        Self {
            url: format!("{server}/{name}"),
            name,
        }
    }

    /// The URL through another port on 127.0.0.1 (a proxy in front of the server).
    pub fn url_via(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{}", self.name)
    }

    pub async fn connect(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url)
            .await
            .expect("connect to test database")
    }

    pub async fn drop_database(&self) {
        if let Ok(mut admin) =
            sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server())).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

/// A RabbitMQ virtual host of the test's own.
pub struct TestBroker {
    pub vhost: String,
    pub port: u16,
}

impl TestBroker {
    pub fn create() -> Self {
        let vhost = format!("airlock-test-{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &vhost]);
        rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
        Self { vhost, port: 5672 }
    }

    /// The URL through `port` (the broker's, or a proxy's in front of it).
    pub fn url_via(&self, port: u16) -> String {
        format!("amqp://guest:guest@127.0.0.1:{port}/{}", self.vhost)
    }

    pub fn url(&self) -> String {
        self.url_via(self.port)
    }

    /// Messages ready in a queue of this virtual host.
    pub fn queue_depth(&self, queue: &str) -> u64 {
        let output = Command::new("rabbitmqctl")
            .args([
                "list_queues",
                "-q",
                "--no-table-headers",
                "-p",
                &self.vhost,
                "name",
                "messages",
            ])
            .output()
            .expect("run rabbitmqctl");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .and_then(|(_, n)| n.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn delete(&self) {
        rabbitmqctl(&["delete_vhost", &self.vhost]);
    }
}

fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("run rabbitmqctl (is RabbitMQ installed and running?)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Restarts the RabbitMQ node every test shares (its application, not the Erlang VM):
/// every connection drops, durable queues and their messages survive. Only for a test
/// binary that runs alone (cargo runs test binaries one after another).
pub fn restart_rabbitmq() {
    rabbitmqctl(&["stop_app"]);
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
}
