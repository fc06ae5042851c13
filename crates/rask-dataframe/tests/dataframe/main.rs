//! Integration tests of rask-dataframe: every operation against eager polars on the same
//! data, under several partitionings. One test binary (polars makes each link large).

mod common;
mod fused;
mod groupby;
mod inspect;
mod object_store;
mod readers;
mod shuffle;
mod stream;
mod transforms;
mod wire;
