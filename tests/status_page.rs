//! The status page at `/`, looked at in a real browser: headless Chromium
//! driven over WebDriver (Debian's `chromium` and `chromium-driver`), against
//! `pgwarden serve` watching a database with a provoked blocked session and a
//! long query. A screenshot lands in target/status-page.png.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::serve_support::{Serve, free_addr, target};
use crate::support::{shared, workdir};

/// chromedriver as a child process, killed when the test ends either way.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let addr = free_addr();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver; .ci/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        url: format!("http://{addr}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            // root in a container: no sandbox; a laptop-sized window.
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1600"]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session in headless Chromium")
}

fn screenshot_path() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    dir.join("status-page.png")
}

#[test]
fn the_status_page_shows_the_blocked_session_its_blocker_a_warning_and_charts_in_chromium() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let database = url.database().to_string();
    shared()
        .psql(
            &database,
            "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL DEFAULT 0); \
             INSERT INTO accounts VALUES (1)",
        )
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A row lock, not a table lock: the size checks still read the table.
    let (holder, waiter, sleeper) = rt.block_on(async {
        let connect = || tokio_postgres::connect(url.expose(), tokio_postgres::NoTls);
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (client, connection) = connect().await.unwrap();
            tokio::spawn(connection);
            clients.push(client);
        }
        let (sleeper, waiter, holder) = (
            clients.pop().unwrap(),
            clients.pop().unwrap(),
            clients.pop().unwrap(),
        );
        holder
            .batch_execute("BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 1")
            .await
            .unwrap();
        (holder, waiter, sleeper)
    });
    let waiting = rt.spawn(async move {
        waiter
            .simple_query("UPDATE accounts SET balance = 0 WHERE id = 1")
            .await
    });
    let sleeping = rt.spawn(async move { sleeper.simple_query("SELECT pg_sleep(600)").await });
    shared()
        .wait_for(
            &database,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query = 'UPDATE accounts SET balance = 0 WHERE id = 1'",
            "1",
            Duration::from_secs(30),
        )
        .unwrap();

    let addr = free_addr();
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n\
         [checks.locks]\nwait_warning = \"0s\"\n\
         [checks.long_queries]\nquery_warning = \"1s\"\n{}",
        target("primary", url.expose(), "")
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_ready();
    // A few cycles, so the charts have more than one point.
    std::thread::sleep(Duration::from_secs(4));

    let driver = start_driver();
    let page = rt.block_on(async {
        let client = browser(&driver).await;
        let seen = look(&client, &addr).await;
        let png = client.screenshot().await.expect("a screenshot");
        // A phone's width: nothing may stick out sideways (wide tables scroll in their box).
        client.set_window_size(390, 844).await.unwrap();
        let overflow = client
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth",
                vec![],
            )
            .await
            .unwrap();
        let _ = client.close().await;
        (seen, png, overflow)
    });
    let (seen, png, overflow) = page;
    assert!(
        overflow.as_f64().is_some_and(|o| o <= 0.0),
        "the page is {overflow} px wider than a phone's screen"
    );
    let path = screenshot_path();
    std::fs::write(&path, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("screenshot: {}", path.display());

    assert_eq!(seen.title, "pgwarden status");
    assert!(
        seen.heading.contains("primary") && seen.heading.contains("up"),
        "{}",
        seen.heading
    );
    assert!(
        seen.overall.contains("degraded") || seen.overall.contains("unhealthy"),
        "{}",
        seen.overall
    );
    assert!(
        seen.locks_row.contains("warning"),
        "locks row: {}",
        seen.locks_row
    );
    assert!(
        seen.locks_row.contains("▲"),
        "the status has a shape too: {}",
        seen.locks_row
    );
    assert!(
        seen.locks
            .contains("UPDATE accounts SET balance = 0 WHERE id = 1"),
        "blocked session: {}",
        seen.locks
    );
    assert!(
        seen.locks
            .contains("UPDATE accounts SET balance = balance + 1"),
        "its blocker: {}",
        seen.locks
    );
    assert!(
        seen.long_queries.contains("pg_sleep(600)"),
        "long query: {}",
        seen.long_queries
    );
    let points: usize = seen.longest_query_points.parse().unwrap_or(0);
    assert!(points >= 2, "the longest-query chart has {points} point(s)");
    assert!(
        seen.polyline.split(' ').count() >= 2,
        "polyline: {}",
        seen.polyline
    );

    drop(holder);
    waiting.abort();
    sleeping.abort();
    shared()
        .psql(
            &database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .unwrap();
    assert!(serve.stop().success());
}

/// What the browser rendered, as text a person would read.
struct Seen {
    title: String,
    heading: String,
    overall: String,
    locks_row: String,
    locks: String,
    long_queries: String,
    longest_query_points: String,
    polyline: String,
}

async fn look(client: &Client, addr: &str) -> Seen {
    client.goto(&format!("http://{addr}/")).await.unwrap();
    let text = |css: &'static str| async move {
        client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} not on the page: {e}"))
            .text()
            .await
            .unwrap()
    };
    let line = client
        .find(Locator::Css(
            "figure[data-chart='Longest query'] polyline.line",
        ))
        .await
        .expect("a longest-query chart with a line");
    Seen {
        title: client.title().await.unwrap(),
        heading: text("section[data-target='primary'] h2").await,
        overall: text("#overall").await,
        locks_row: text("tr[data-check='locks']").await,
        locks: text("details[data-check='locks']").await,
        long_queries: text("details[data-check='long_queries']").await,
        longest_query_points: line.attr("data-points").await.unwrap().unwrap_or_default(),
        polyline: line.attr("points").await.unwrap().unwrap_or_default(),
    }
}
