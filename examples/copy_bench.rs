//! Benchmark: the seed's binary COPY encoder (`pgwarden::seed::copybin`)
//! against `tokio_postgres::binary_copy::BinaryCopyInWriter`, writing the
//! same rows into the same table, alternating, in the same run.
//!
//! ```sh
//! cargo run --release --example copy_bench [-- --rows 1000000 --rounds 5]
//! ```
//!
//! The table has the column types the seed writes most (uuid, integer,
//! boolean, text, timestamptz, jsonb). Both writers get the same values,
//! built the same way; copybin sends 1 MiB chunks like the seed's writer,
//! the crate's writer takes one row at a time through `ToSql`. Measured:
//! wall time of the COPY (server included) and this process's CPU time
//! (the encoder's share, which on two cores competes with the server).

use std::error::Error;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use pgwarden::cluster::Cluster;
use pgwarden::seed::copybin::{HEADER, Rows, TRAILER};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use uuid::Uuid;

const TABLE: &str =
    "CREATE TABLE bench (id uuid, n integer, flag boolean, name text, at timestamptz, doc jsonb)";
const COPY: &str = "COPY bench FROM STDIN (FORMAT binary)";
/// Unix seconds of 2024-01-01, the base of the generated timestamps.
const BASE_SECS: i64 = 1_704_067_200;

/// One row's values, generated the same way for both writers.
struct Row {
    id: Uuid,
    n: i32,
    flag: bool,
    name: String,
    at_secs: i64,
    doc: String,
}

fn row(i: u64, row: &mut Row) {
    use std::fmt::Write;
    row.id = Uuid::from_u64_pair(0x5eed, i);
    row.n = (i % 1_000_003) as i32;
    row.flag = i.is_multiple_of(3);
    row.name.clear();
    let _ = write!(row.name, "learner {i}");
    row.at_secs = BASE_SECS + (i as i64 % 31_536_000);
    row.doc.clear();
    let _ = write!(row.doc, "{{\"step\": {}, \"score\": {}}}", i % 40, i % 101);
}

fn empty_row() -> Row {
    Row {
        id: Uuid::nil(),
        n: 0,
        flag: false,
        name: String::new(),
        at_secs: 0,
        doc: String::new(),
    }
}

/// JSON text as a `jsonb` parameter (what the seed has in hand).
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_u8(1);
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

async fn with_copybin(client: &tokio_postgres::Client, rows: u64) {
    let sink = client.copy_in::<_, Bytes>(COPY).await.expect("COPY");
    futures::pin_mut!(sink);
    sink.send(Bytes::from_static(HEADER)).await.expect("send");
    let (mut buf, mut values) = (Rows::default(), empty_row());
    for i in 0..rows {
        row(i, &mut values);
        buf.uuid(values.id)
            .int(values.n.into())
            .bool(values.flag)
            .text(&values.name)
            .ts(values.at_secs)
            .json(&values.doc);
        buf.end();
        if buf.bytes() >= 1 << 20 {
            sink.send(Bytes::from(buf.take().0)).await.expect("send");
        }
    }
    sink.send(Bytes::from(buf.take().0)).await.expect("send");
    sink.send(Bytes::from_static(TRAILER)).await.expect("send");
    sink.finish().await.expect("finish COPY");
}

async fn with_writer(client: &tokio_postgres::Client, rows: u64) {
    let sink = client.copy_in(COPY).await.expect("COPY");
    let types = [
        Type::UUID,
        Type::INT4,
        Type::BOOL,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::JSONB,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures::pin_mut!(writer);
    let mut values = empty_row();
    for i in 0..rows {
        row(i, &mut values);
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(values.at_secs as u64);
        writer
            .as_mut()
            .write(&[
                &values.id,
                &values.n,
                &values.flag,
                &values.name,
                &at,
                &JsonText(&values.doc),
            ])
            .await
            .expect("write");
    }
    writer.finish().await.expect("finish COPY");
}

/// Row count and a hash of every row's text: both writers must store the same.
async fn fingerprint(client: &tokio_postgres::Client) -> (i64, String) {
    let row = client
        .query_one(
            "SELECT count(*), md5(string_agg(b::text, '|' ORDER BY b.id)) FROM bench b",
            &[],
        )
        .await
        .expect("fingerprint");
    (row.get(0), row.get(1))
}

/// This process's CPU seconds (user + system) so far.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut rows: u64 = 1_000_000;
    let mut rounds = 5;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--rows" => rows = value.parse().expect("--rows N"),
            "--rounds" => rounds = value.parse().expect("--rounds N"),
            other => panic!("unknown argument {other}; use --rows N --rounds N"),
        }
    }
    let cluster = Cluster::start().expect("start PostgreSQL");
    let url = cluster.create_database().expect("database");
    // One thread: the CPU time measured is the encoder's and the driver's.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client.batch_execute(TABLE).await.expect("create table");
        client
    });
    let mut results: [(&str, Vec<f64>, Vec<f64>); 2] = [
        ("copybin (ours)", Vec::new(), Vec::new()),
        ("BinaryCopyInWriter", Vec::new(), Vec::new()),
    ];
    let mut fingerprints = Vec::new();
    for round in 0..rounds {
        for (which, (_, walls, cpus)) in results.iter_mut().enumerate() {
            runtime
                .block_on(client.batch_execute("TRUNCATE bench"))
                .expect("truncate");
            let (wall, cpu) = (Instant::now(), cpu_seconds());
            runtime.block_on(async {
                match which {
                    0 => with_copybin(&client, rows).await,
                    _ => with_writer(&client, rows).await,
                }
            });
            walls.push(wall.elapsed().as_secs_f64());
            cpus.push(cpu_seconds() - cpu);
            if round == 0 {
                fingerprints.push(runtime.block_on(fingerprint(&client)));
            }
        }
        assert_eq!(
            fingerprints[0], fingerprints[1],
            "the two writers stored different rows"
        );
        println!(
            "round {}: copybin {:.2} s wall / {:.2} s CPU, BinaryCopyInWriter {:.2} s wall / {:.2} s CPU",
            round + 1,
            results[0].1[round],
            results[0].2[round],
            results[1].1[round],
            results[1].2[round]
        );
    }
    println!("medians over {rounds} rounds of {rows} rows:");
    let mut medians = Vec::new();
    for (name, walls, cpus) in &mut results {
        let (wall, cpu) = (median(walls), median(cpus));
        println!(
            "  {name:<20} {wall:>6.2} s wall ({:>9.0} rows/s)  {cpu:>6.2} s client CPU",
            rows as f64 / wall
        );
        medians.push((wall, cpu));
    }
    println!(
        "BinaryCopyInWriter / copybin: {:.2} x the wall time, {:.2} x the client CPU",
        medians[1].0 / medians[0].0,
        medians[1].1 / medians[0].1
    );
}
