//! rask-bag end to end: every operation against plain iterator code on the same items
//! (under several partitionings), the readers on local files and a loopback S3 bucket, and
//! the errors bad input gives.

mod io;
mod ops;
mod oracle;
