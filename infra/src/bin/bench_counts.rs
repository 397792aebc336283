//! `bench-counts`: count loading and recipient-list pages on the embedded store.
//!
//! For each size it generates one division of that many contacts with the deterministic
//! demo generator ([`portal_core::demo`]) on a file-backed SQLite store in a temporary
//! directory, applies realistic portal states through the store port, then times, over N
//! iterations each:
//!
//! - `count_contacts` for the whole division (no filters), and with filters;
//! - `filter_values` for the division (the values each list filter takes);
//! - a 500-row `list_contacts` page: the first page, and a deep page (halfway through the
//!   division, reached by following cursors), and a searched page.
//!
//! It prints p50/p95 in milliseconds per operation and the process's peak RSS (`VmHWM`).
//! Run it in release mode:
//!
//! ```text
//! cargo run --profile bench -p portal-invites --bin bench-counts -- --sizes 100000,1000000 --iterations 30
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use portal_core::demo;
use portal_core::domain::{
    DivisionId, DivisionInput, Email, FilterField, Filters, Group, TenantId,
};
use portal_core::ports::{ContactQuery, ContactStore, ListQuery, Store};
use portal_core::usecases::sync::SYNC_CHUNK;
use portal_embedded::sqlite::SqliteStore;
use time::OffsetDateTime;

#[derive(Debug, Parser)]
#[command(
    name = "bench-counts",
    about = "Benchmark counts and lists on the embedded store"
)]
struct Args {
    /// Division sizes (contacts), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<usize>,
    /// Timed iterations per operation.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Where to put the databases (default: a fresh directory under the system temp dir,
    /// removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Accounts generated and written per store call while loading.
const LOAD_CHUNK: usize = 2_000;
const PAGE: u32 = 500;

#[derive(Debug)]
struct Row {
    size: usize,
    op: &'static str,
    p50: f64,
    p95: f64,
    note: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Peak resident set size of this process in MiB, from `/proc/self/status`.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn time_n<F, Fut, T>(n: usize, mut f: F) -> anyhow::Result<(f64, f64, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    // One untimed warm-up run.
    let mut last = f().await?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        last = f().await?;
        times.push(ms(start.elapsed()));
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((percentile(&times, 0.5), percentile(&times, 0.95), last))
}

/// How long loading took.
#[derive(Debug, Default)]
struct LoadTimes {
    accounts: u64,
    sync: Duration,
    states: Duration,
    state_writes: u64,
}

/// Generates and stores one division of exactly `size` contacts: sync in chunks, then the
/// portal states and suppressions through the per-contact port calls.
async fn load(
    store: &dyn Store,
    tenant: &TenantId,
    division: &DivisionId,
    size: usize,
    now: OffsetDateTime,
) -> anyhow::Result<LoadTimes> {
    let mut times = LoadTimes::default();
    store
        .put_division(
            tenant,
            &DivisionInput::new(
                division.clone(),
                format!("Benchmark division of {size} contacts"),
                Email::parse("bench@example.com")?,
            )?,
        )
        .await?;
    let mut written = 0usize;
    let mut next = 0u64;
    let mut summary = demo::DemoSummary::default();
    while written < size {
        let mut chunk = demo::accounts(demo::DEMO_SEED, division, next, LOAD_CHUNK)?;
        next += LOAD_CHUNK as u64;
        // Trim so the division holds exactly `size` contacts.
        let mut kept = Vec::with_capacity(chunk.len());
        for mut a in chunk.drain(..) {
            if written >= size {
                break;
            }
            a.contacts.truncate(size - written);
            written += a.contacts.len();
            kept.push(a);
        }
        let start = Instant::now();
        for part in kept.chunks(SYNC_CHUNK) {
            store.upsert_accounts(tenant, part).await?;
        }
        times.sync += start.elapsed();
        let start = Instant::now();
        demo::apply_states(store, tenant, demo::DEMO_SEED, &kept, now, &mut summary).await?;
        times.states += start.elapsed();
        times.accounts += kept.len() as u64;
    }
    // One status write per contact, one more per invitation, one per suppression.
    times.state_writes = size as u64 + summary.invitations + summary.suppressed;
    Ok(times)
}

async fn bench_size(
    store: &SqliteStore,
    size: usize,
    iterations: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let tenant = TenantId::parse("bench")?;
    let division = DivisionId::parse(format!("bench-{size}"))?;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    eprintln!("loading {size} contacts...");
    let t = load(store, &tenant, &division, size, now).await?;
    let (sync, states) = (t.sync.as_secs_f64(), t.states.as_secs_f64());
    eprintln!(
        "  synced {size} contacts ({} accounts) in {sync:.1} s ({:.0} contacts/s, chunks of \
         {SYNC_CHUNK} accounts); ~{} state writes in {states:.1} s ({:.0}/s)",
        t.accounts,
        size as f64 / sync,
        t.state_writes,
        t.state_writes as f64 / states
    );
    rows.push(Row {
        size,
        op: "sync (per 500 accounts)",
        p50: sync * 1_000.0 / (t.accounts as f64 / SYNC_CHUNK as f64),
        p95: f64::NAN,
        note: format!("mean; {:.0} contacts/s", size as f64 / sync),
    });

    let query = ContactQuery {
        division_ids: vec![division.clone()],
        filters: Filters::default(),
        // Pending contacts are targeted too, so the 24-hour rule has work to do.
        limit_to_uninvited: false,
        now,
    };
    let (p50, p95, counts) = time_n(iterations, || async {
        Ok(store.count_contacts(&tenant, &query).await?)
    })
    .await?;
    if counts.total != size as u64 {
        bail!("counted {} contacts, expected {size}", counts.total);
    }
    rows.push(Row {
        size,
        op: "count, no filters",
        p50,
        p95,
        note: format!(
            "total {} eligible {} held {} suppressed {} no_email {}",
            counts.total, counts.eligible, counts.held_24h, counts.suppressed, counts.no_email
        ),
    });

    let filtered = ContactQuery {
        filters: Filters {
            account_class: vec!["Residential".into(), "Multi-Family".into()],
            bill_group: vec!["Cycle 1".into(), "Cycle 3".into()],
            active_services: true,
            without_autopay: true,
            ..Default::default()
        },
        ..query.clone()
    };
    let (p50, p95, c) = time_n(iterations, || async {
        Ok(store.count_contacts(&tenant, &filtered).await?)
    })
    .await?;
    rows.push(Row {
        size,
        op: "count, 4 filters",
        p50,
        p95,
        note: format!("total {}", c.total),
    });

    let (p50, p95, values) = time_n(iterations, || async {
        Ok(store
            .filter_values(&tenant, std::slice::from_ref(&division))
            .await?)
    })
    .await?;
    let fields: Vec<usize> = FilterField::ALL
        .iter()
        .map(|f| values.first().map_or(0, |v| v.values(*f).count()))
        .collect();
    let classes: u64 = values
        .iter()
        .flat_map(|v| v.values(FilterField::AccountClass).map(|(_, n)| n))
        .sum();
    if classes != size as u64 {
        bail!("the filter values count {classes} contacts, expected {size}");
    }
    rows.push(Row {
        size,
        op: "filter values",
        p50,
        p95,
        note: format!("distinct values per field {fields:?}"),
    });

    let list = |cursor: Option<String>, group: Group, search: &str| ListQuery {
        contacts: query.clone(),
        group,
        search: search.into(),
        cursor,
        limit: PAGE,
        // As the API asks.
        max_examined: Some(portal_core::ports::MAX_EXAMINED),
    };
    let first = list(None, Group::All, "");
    let (p50, p95, page) = time_n(iterations, || async {
        Ok(store.list_contacts(&tenant, &first).await?)
    })
    .await?;
    rows.push(Row {
        size,
        op: "list 500, first page",
        p50,
        p95,
        note: format!("{} rows", page.items.len()),
    });

    // Follow cursors to the middle of the division, timing each page on the way.
    let mut cursor = page.next_cursor;
    let mut walk = Vec::new();
    let pages_to_middle = size / PAGE as usize / 2;
    for _ in 1..pages_to_middle {
        let start = Instant::now();
        let p = store
            .list_contacts(&tenant, &list(cursor.take(), Group::All, ""))
            .await?;
        walk.push(ms(start.elapsed()));
        cursor = p.next_cursor;
    }
    walk.sort_by(|a, b| a.total_cmp(b));
    rows.push(Row {
        size,
        op: "list 500, paging through",
        p50: percentile(&walk, 0.5),
        p95: percentile(&walk, 0.95),
        note: format!("{} pages followed", walk.len()),
    });
    let deep = list(cursor, Group::All, "");
    let (p50, p95, page) = time_n(iterations, || async {
        Ok(store.list_contacts(&tenant, &deep).await?)
    })
    .await?;
    rows.push(Row {
        size,
        op: "list 500, deep page",
        p50,
        p95,
        note: format!(
            "page {} of the division, {} rows",
            pages_to_middle,
            page.items.len()
        ),
    });

    let eligible = list(None, Group::Eligible, "");
    let (p50, p95, page) = time_n(iterations, || async {
        Ok(store.list_contacts(&tenant, &eligible).await?)
    })
    .await?;
    rows.push(Row {
        size,
        op: "list 500, eligible",
        p50,
        p95,
        note: format!("{} rows", page.items.len()),
    });

    let searched = list(None, Group::All, "smith");
    let (p50, p95, page) = time_n(iterations, || async {
        Ok(store.list_contacts(&tenant, &searched).await?)
    })
    .await?;
    rows.push(Row {
        size,
        op: "list 500, search \"smith\"",
        p50,
        p95,
        note: format!("{} rows", page.items.len()),
    });
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let (dir, temporary) = match args.dir {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("bench-counts-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut rows = Vec::new();
    let mut rss = Vec::new();
    for &size in &args.sizes {
        let path = dir.join(format!("bench-{size}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        let store = SqliteStore::open(&path)?;
        bench_size(&store, size, args.iterations, &mut rows).await?;
        let db_mib = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
        rss.push((size, peak_rss_mib(), db_mib));
    }
    if temporary {
        std::fs::remove_dir_all(&dir).ok();
    }

    println!();
    println!(
        "Embedded store (SQLite), {} timed iterations per operation, page = {PAGE} rows",
        args.iterations
    );
    println!();
    println!(
        "| {:>9} | {:<26} | {:>9} | {:>9} | note",
        "contacts", "operation", "p50 ms", "p95 ms"
    );
    println!(
        "|{:-<11}|{:-<28}|{:-<11}|{:-<11}|{:-<40}",
        "", "", "", "", ""
    );
    for r in &rows {
        println!(
            "| {:>9} | {:<26} | {:>9.2} | {:>9.2} | {}",
            r.size, r.op, r.p50, r.p95, r.note
        );
    }
    println!();
    for (size, peak, db) in rss {
        match peak {
            Some(p) => println!(
                "after {size:>9} contacts: peak RSS {p:.0} MiB (cumulative), database file {db:.0} MiB"
            ),
            None => println!("after {size:>9} contacts: peak RSS unavailable, database file {db:.0} MiB"),
        }
    }
    Ok(())
}
