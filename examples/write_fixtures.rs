fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets");
    rask_examples::datasets::write_flights(
        &root.join("flights-small"),
        &rask_examples::datasets::FlightsOptions {
            years: 1990..=1992,
            rows_per_year: 300,
            seed: 0,
            format: rask_examples::datasets::Format::Both,
            row_group_rows: 100,
        },
    )
    .unwrap();
    rask_examples::datasets::write_stocks(&root.join("stocks-small"), 3, 50, 0).unwrap();
}
