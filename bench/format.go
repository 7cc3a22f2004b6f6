package main

import (
	"fmt"
	"math"
	"time"
)

// Formatting of the report's cells. A figure a run does not have is NaN
// and prints as "–".

const dash = "–"

var nan = math.NaN()

func (c cpuUse) String() string {
	if c == (cpuUse{}) {
		return dash
	}
	if c.machine == 0 {
		return fmt.Sprintf("%.2f + %.2f", c.server, c.generator)
	}
	return fmt.Sprintf("%.2f + %.2f (%.2f of %d)", c.server, c.generator, c.machine, cores())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// msOf formats a latency held as float64 nanoseconds.
func msOf(ns float64) string {
	return ifNum(ns, func(v float64) string { return ms(time.Duration(v)) })
}

func mib(b float64) string {
	return ifNum(b, func(v float64) string { return fmt.Sprintf("%.0f MiB", v/(1<<20)) })
}

func perSecond(v float64) string {
	return ifNum(v, func(v float64) string { return thousands(v) + "/s" })
}

func percent(v float64) string {
	return ifNum(v, func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) })
}

func bytesOf(v float64) string {
	return ifNum(v, func(v float64) string { return thousands(v) + " B" })
}

// gain is a new/old ratio of two figures.
func gain(v float64) string {
	return ifNum(v, func(v float64) string { return fmt.Sprintf("×%.2f", v) })
}

// took formats a duration rounded for a table.
func took(d time.Duration) string {
	if d <= 0 {
		return dash
	}
	return d.Round(10 * time.Millisecond).String()
}

func ifNum(v float64, f func(float64) string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return dash
	}
	return f(v)
}

func thousands(v float64) string {
	if math.IsNaN(v) {
		return dash
	}
	s := fmt.Sprintf("%.0f", math.Abs(v))
	var out []byte
	if v <= -0.5 {
		out = append(out, '-')
	}
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

// judge is the verdict of a target on a figure.
func judge(v float64, met func(float64) bool) string {
	switch {
	case math.IsNaN(v):
		return dash
	case met(v):
		return "met"
	}
	return "**missed**"
}

// ratio is a/b, NaN when either is missing or b is 0.
func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return nan
	}
	return a / b
}
