// Package bytesize is a size in bytes as the config file writes it: a
// number of bytes, or a number with a unit ("256MiB", "1GiB", "512KiB" in
// powers of 1024; "100MB", "1GB" in powers of 1000; "4096B"). receiptd's
// config reads memory_budget with it (package config), and the memory
// plan (internal/membudget) logs its cache sizes with Size.String.
package bytesize
