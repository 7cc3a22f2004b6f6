package console

import (
	"net"
	"testing"
)

func TestLoopbackURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"0.0.0.0:8080":   "http://127.0.0.1:8080",
		"[::]:8080":      "http://[::1]:8080",
		"10.1.2.3:80":    "http://10.1.2.3:80",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := LoopbackURL(a); got != want {
			t.Errorf("LoopbackURL(%s) = %s, want %s", in, got, want)
		}
	}
}
