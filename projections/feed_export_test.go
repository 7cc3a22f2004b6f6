package projections

// SetFeedSpillBytes sets a bulk build's budget for its feed records in
// memory (feedSpillBytes) and returns the function that restores it.
func SetFeedSpillBytes(n int64) func() {
	old := feedSpillBytes
	feedSpillBytes = n
	return func() { feedSpillBytes = old }
}
