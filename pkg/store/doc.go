// Package store writes events to ClickHouse and keeps its schema: a
// connection with the server's version detected (Open), versioned migrations
// embedded in the binary (Migrate, Schema), retention by dropping old
// partitions (DropPartitionsOlderThan) and a batch writer that groups rows by
// size or age and tells each row's owner when its insert committed
// (BatchWriter).
//
// It speaks the native protocol only and stays within what ClickHouse 18.16
// (Debian's package) understands, while newer servers get their extras
// (LowCardinality, codecs) through version-gated migration blocks. Known
// limits of 18.16 shape the code: inserts always go through PrepareBatch with
// an explicit column list (a plain `INSERT ... VALUES` through Exec waits for
// data blocks forever), client settings are integers, and there are no
// server-side query parameters, so the client's `?` binding is used and every
// identifier is validated before it is quoted into SQL.
package store
