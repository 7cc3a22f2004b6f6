// Package config is receiptd's config file: its YAML schema (Config and
// one struct per section), the defaults, the validation that reports
// every mistake at once, and the conversion of each section into what
// the package it configures takes.
//
// # Basics
//
// Load reads the file named by Config.File (the --config flag; the other
// flags fill DataDir, HTTPAddr and GRPCAddr), applies the defaults and
// calls Validate. A secret value is a literal, env:NAME or file:PATH
// (internal/secret), resolved when it is used, never logged.
//
// From a loaded Config: Providers builds one verifier per source (the
// provider packages under handlers/webhook); NewAccess the query API's
// access control and rate limits (handlers/api) and the ingest rate
// limit; FeedDestinations the feed's push destinations (feed); PrivacyConfig's
// KEKs the key-encryption keys (privacy); Memory the plan of the memory
// budget (internal/membudget); Overdue each source's retry window;
// ConsoleSources what the console signs test events with.
//
// # What it must not do
//
// It opens no file but the config and the secrets it names, and starts
// nothing: opening the data directory is package datadir's, running the
// server cmd/receiptd's. It imports no aggregate; nothing imports it but
// cmd/receiptd and datadir.
package config
