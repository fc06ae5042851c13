//! Deterministic generators for the DataFrame tutorial's data: nycflights-like yearly
//! flights files (CSV and/or Parquet), nyc-taxi-like Parquet files and daily-stock JSON-lines
//! files. The same options always give the same rows; each file depends only on the seed and
//! its own index (year, part or symbol), so one file can be regenerated on its own.
//! `datasets/README.md` describes the schemas; `rask datasets flights|taxi|stocks` runs them.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rask::dataframe::polars::prelude::{
    Column, CsvWriter, DataFrame, ParquetCompression, ParquetWriter, SerWriter,
};

use crate::rng::SplitMix64;

/// Airports with their own mean delay (minutes), so per-origin means differ.
pub const AIRPORTS: [(&str, f64); 24] = [
    ("ATL", 9.0),
    ("ORD", 14.0),
    ("DFW", 8.5),
    ("DEN", 11.0),
    ("LAX", 7.5),
    ("SFO", 12.5),
    ("JFK", 13.0),
    ("LAS", 6.0),
    ("SEA", 5.5),
    ("CLT", 7.0),
    ("PHX", 4.5),
    ("MIA", 10.0),
    ("IAH", 9.5),
    ("MCO", 8.0),
    ("EWR", 15.5),
    ("BOS", 11.5),
    ("MSP", 6.5),
    ("DTW", 7.8),
    ("PHL", 10.5),
    ("LGA", 14.5),
    ("BWI", 8.2),
    ("SLC", 3.5),
    ("SAN", 5.0),
    ("DCA", 9.2),
];
const CARRIERS: [&str; 8] = ["AA", "DL", "UA", "WN", "US", "NW", "CO", "AS"];

/// File formats of [`write_flights`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    Both,
}

/// Options of [`write_flights`].
#[derive(Clone, Debug)]
pub struct FlightsOptions {
    pub years: std::ops::RangeInclusive<i64>,
    pub rows_per_year: usize,
    pub seed: u64,
    pub format: Format,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
}

impl Default for FlightsOptions {
    fn default() -> Self {
        FlightsOptions {
            years: 1990..=1999,
            rows_per_year: 2_000_000,
            seed: 0,
            format: Format::Both,
            row_group_rows: 256 * 1024,
        }
    }
}

fn stream(seed: u64, index: u64) -> SplitMix64 {
    let mut s = SplitMix64::new(seed ^ 0x5ca1_ab1e);
    let base = s.next_u64();
    SplitMix64::new(base.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// Standard normal by Box-Muller (enough for made-up delays).
fn normal(r: &mut SplitMix64) -> f64 {
    let u = r.next_f64().max(1e-300);
    let v = r.next_f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// The flights of one year as a polars frame.
pub fn flights_year(year: i64, rows: usize, seed: u64) -> anyhow::Result<DataFrame> {
    let mut r = stream(seed, year as u64);
    let mut cols: [Vec<i64>; 9] = Default::default(); // Year..CRSDepTime, FlightNum, Distance, Cancelled
    let (mut carrier, mut origin, mut dest) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    let (mut arr, mut dep) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for c in cols.iter_mut() {
        c.reserve(rows);
    }
    for i in 0..rows {
        let month = 1 + (i * 12 / rows.max(1)) as i64;
        let day = 1 + (r.next_u64() % 28) as i64;
        let o = (r.next_u64() % AIRPORTS.len() as u64) as usize;
        let mut d = (r.next_u64() % AIRPORTS.len() as u64) as usize;
        if d == o {
            d = (d + 1) % AIRPORTS.len();
        }
        let crs = 600 + (r.next_u64() % 1600) as i64;
        let cancelled = r.next_u64().is_multiple_of(50);
        let delay = (AIRPORTS[o].1 + 22.0 * normal(&mut r)).round().max(-30.0);
        let arr_delay = (delay + 8.0 * normal(&mut r)).round();
        let dep_time = (crs + delay as i64).rem_euclid(2400);
        cols[0].push(year);
        cols[1].push(month);
        cols[2].push(day);
        cols[3].push(1 + (day + month * 3) % 7);
        cols[4].push(dep_time);
        cols[5].push(crs);
        cols[6].push(1 + (r.next_u64() % 3000) as i64);
        cols[7].push(100 + (r.next_u64() % 2600) as i64);
        cols[8].push(cancelled as i64);
        carrier.push(CARRIERS[(r.next_u64() % CARRIERS.len() as u64) as usize]);
        origin.push(AIRPORTS[o].0);
        dest.push(AIRPORTS[d].0);
        arr.push((!cancelled).then_some(arr_delay));
        dep.push((!cancelled).then_some(delay));
    }
    let dep_time: Vec<Option<i64>> = cols[4]
        .iter()
        .zip(&cols[8])
        .map(|(t, c)| (*c == 0).then_some(*t))
        .collect();
    let [year_c, month_c, day_c, dow, _, crs_c, flight, dist, canc] = cols;
    Ok(DataFrame::new_infer_height(vec![
        Column::new("Year".into(), year_c),
        Column::new("Month".into(), month_c),
        Column::new("DayofMonth".into(), day_c),
        Column::new("DayOfWeek".into(), dow),
        Column::new("DepTime".into(), dep_time),
        Column::new("CRSDepTime".into(), crs_c),
        Column::new("UniqueCarrier".into(), carrier),
        Column::new("FlightNum".into(), flight),
        Column::new("ArrDelay".into(), arr),
        Column::new("DepDelay".into(), dep),
        Column::new("Origin".into(), origin),
        Column::new("Dest".into(), dest),
        Column::new("Distance".into(), dist),
        Column::new("Cancelled".into(), canc),
    ])?)
}

fn create(path: &Path) -> anyhow::Result<BufWriter<std::fs::File>> {
    let f = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

fn write_parquet(df: &mut DataFrame, path: &Path, row_group_rows: usize) -> anyhow::Result<()> {
    let mut w = create(path)?;
    ParquetWriter::new(&mut w)
        .with_compression(ParquetCompression::Snappy)
        .with_row_group_size(Some(row_group_rows))
        .finish(df)?;
    w.flush()?;
    Ok(())
}

/// Writes `YYYY.csv` and/or `YYYY.parquet` per year into `dir` (created if needed).
pub fn write_flights(dir: &Path, opts: &FlightsOptions) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(opts.rows_per_year > 0, "rows_per_year must be positive");
    anyhow::ensure!(
        !opts.years.is_empty(),
        "years: the range {:?} is empty",
        opts.years
    );
    anyhow::ensure!(opts.row_group_rows > 0, "row_group_rows must be positive");
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for year in opts.years.clone() {
        let mut df = flights_year(year, opts.rows_per_year, opts.seed)?;
        if matches!(opts.format, Format::Csv | Format::Both) {
            let path = dir.join(format!("{year}.csv"));
            let mut w = create(&path)?;
            CsvWriter::new(&mut w)
                .include_header(true)
                .finish(&mut df)?;
            w.flush()?;
            out.push(path);
        }
        if matches!(opts.format, Format::Parquet | Format::Both) {
            let path = dir.join(format!("{year}.parquet"));
            write_parquet(&mut df, &path, opts.row_group_rows)?;
            out.push(path);
        }
    }
    Ok(out)
}

/// Writes `yellow-part-NNN.parquet` files of nyc-taxi-like trips.
pub fn write_taxi(
    dir: &Path,
    files: usize,
    rows_per_file: usize,
    seed: u64,
) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(
        files > 0 && rows_per_file > 0,
        "files and rows_per_file must be positive"
    );
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for part in 0..files {
        let mut r = stream(seed, 10_000 + part as u64);
        let n = rows_per_file;
        let (mut vendor, mut pickup, mut passengers, mut distance) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut fare, mut tip, mut total, mut payment) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for i in 0..n {
            vendor.push(1 + (r.next_u64() % 2) as i64);
            // Microseconds since 2015-01-01, spread over a month per part.
            pickup.push(
                1_420_070_400_000_000i64
                    + (part as i64 * 2_592_000 + (i * 2_592_000 / n) as i64) * 1_000_000,
            );
            let p = [1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6][(r.next_u64() % 11) as usize];
            passengers.push(p as i64);
            let d = (0.3 + 12.0 * r.next_f64() * r.next_f64() * 100.0).round() / 100.0;
            distance.push(d);
            let f = ((2.5 + 2.5 * d) * 100.0).round() / 100.0;
            let t = ((f * 0.2 * r.next_f64()) * 100.0).round() / 100.0;
            fare.push(f);
            tip.push(t);
            total.push(((f + t + 0.8) * 100.0).round() / 100.0);
            payment.push(1 + (r.next_u64() % 4) as i64);
        }
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("VendorID".into(), vendor),
            Column::new("tpep_pickup_datetime".into(), pickup),
            Column::new("passenger_count".into(), passengers),
            Column::new("trip_distance".into(), distance),
            Column::new("fare_amount".into(), fare),
            Column::new("tip_amount".into(), tip),
            Column::new("total_amount".into(), total),
            Column::new("payment_type".into(), payment),
        ])?;
        let path = dir.join(format!("yellow-part-{part:03}.parquet"));
        write_parquet(&mut df, &path, 128 * 1024)?;
        out.push(path);
    }
    Ok(out)
}

/// Ticker symbols of [`write_stocks`].
pub const SYMBOLS: [&str; 10] = [
    "AAPL", "MSFT", "AMZN", "GOOG", "META", "NVDA", "TSLA", "JPM", "V", "XOM",
];

/// Writes one `SYMBOL.jsonl` per symbol: a random walk of daily prices on weekdays from
/// 2020-01-01.
pub fn write_stocks(
    dir: &Path,
    symbols: usize,
    days: usize,
    seed: u64,
) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(
        symbols > 0 && symbols <= SYMBOLS.len(),
        "symbols must be in 1..={}",
        SYMBOLS.len()
    );
    anyhow::ensure!(days > 0, "days must be positive");
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for (k, sym) in SYMBOLS.iter().take(symbols).enumerate() {
        let mut r = stream(seed, 20_000 + k as u64);
        let path = dir.join(format!("{sym}.jsonl"));
        let mut w = create(&path)?;
        let mut price = 50.0 + 200.0 * r.next_f64();
        let (mut y, mut m, mut d, mut dow) = (2020, 1, 1, 3); // 2020-01-01 was a Wednesday
        let mut written = 0;
        while written < days {
            if dow < 5 {
                let open = price;
                price = (price * (1.0 + 0.02 * normal(&mut r))).max(1.0);
                let high = open.max(price) * (1.0 + 0.01 * r.next_f64());
                let low = open.min(price) * (1.0 - 0.01 * r.next_f64());
                let volume = 1_000_000 + r.next_u64() % 9_000_000;
                writeln!(
                    w,
                    "{{\"date\":\"{y:04}-{m:02}-{d:02}\",\"symbol\":\"{sym}\",\"open\":{open:.4},\"high\":{high:.4},\"low\":{low:.4},\"close\":{price:.4},\"volume\":{volume}}}"
                )?;
                written += 1;
            }
            dow = (dow + 1) % 7;
            let month_len = [
                31,
                if y % 4 == 0 { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][m - 1];
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        w.flush()?;
        out.push(path);
    }
    Ok(out)
}
