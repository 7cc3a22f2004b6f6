package console

import (
	"net"
	"net/netip"
)

// LoopbackURL is the base URL a process reaches its own HTTP listener at
// a (for Options.WebhookURL): an unspecified host (":8080", "0.0.0.0")
// becomes loopback.
func LoopbackURL(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ap.Addr().IsUnspecified() {
		lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if ap.Addr().Is6() && !ap.Addr().Is4In6() {
			lo = netip.IPv6Loopback()
		}
		ap = netip.AddrPortFrom(lo, ap.Port())
	}
	return "http://" + ap.String()
}
