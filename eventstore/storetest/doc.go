// Package storetest is the conformance suite of eventstore.Store: the one
// list of cases every adapter's tests run, so that the embedded store and
// KurrentDB keep the same contract.
//
// # Basics
//
// An adapter's test describes how to get a log and what it can do, and calls
// Run:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			NewLog: func(t *testing.T) storetest.OpenFunc {
//				path := filepath.Join(t.TempDir(), "events.db")
//				return func(context.Context) (eventstore.Store, error) {
//					return bolt.Open(path, bolt.Options{})
//				}
//			},
//			Features: storetest.Features{FreshLog: true, Reopen: true, Subscribe: true},
//		})
//	}
//
// Every case is a subtest with its own log and a deadline; a case that needs
// a feature the harness lacks is skipped with the reason, never passed.
//
// # Caveats
//
// The suite never assumes that it is alone on the log unless the harness
// says so (Features.FreshLog): it names its streams with a random suffix,
// keeps only its own streams from ReadAll and Subscribe, and reads from the
// head it recorded before appending. It can so run against a shared
// KurrentDB server. It does not delete what it appends.
//
// This package imports eventstore, aggregate and the standard library; it is
// imported only by tests.
package storetest
