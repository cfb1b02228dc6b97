//go:build race

package graphemu

// raceEnabled shrinks the data-heavy tests, which the race detector slows
// down tenfold.
const raceEnabled = true
