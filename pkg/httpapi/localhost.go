package httpapi

import (
	"net"
	"net/http"
	"strings"
)

// LocalHost reports whether host, a request's Host header, addresses this
// machine as only a client on it would: localhost (or a name under
// .localhost) or an IP address. A listener that serves without a token
// (allowed on loopback only) must answer nothing else: a web page in the
// operator's browser can point a name of its own at 127.0.0.1 (DNS
// rebinding) and then read and post there as a local client, but its
// requests carry that name in Host. An IP address cannot be rebound, and
// a page at 127.0.0.1 already runs on this machine.
func LocalHost(host string) bool {
	if host == "" {
		return true // HTTP/1.0 without Host: no browser sends that
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(host) != nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// LocalOnly serves next only the requests whose Host is LocalHost; the
// others get a 403 saying why. It guards a listener that has no token.
func LocalOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !LocalHost(r.Host) {
			WriteError(w, http.StatusForbidden, NotLocalHostMessage)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// NotLocalHostMessage is the answer to a request refused by LocalOnly.
const NotLocalHostMessage = "this listener has no token and answers only requests addressed to localhost or an IP address " +
	"(a web page could point a name of its own at this machine): use 127.0.0.1 or localhost, or configure a token"
