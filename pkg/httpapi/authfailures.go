package httpapi

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MaxAuthFailureClients bounds the client addresses whose failures are
// remembered; when full, the ones whose bucket refilled are forgotten.
const MaxAuthFailureClients = 10_000

// AuthFailures rate-limits requests with a missing or wrong token per
// client address: each failure takes a token from the address's bucket
// (burst tokens, refilled at perSecond), and an address with an empty
// bucket has its missing or wrong tokens refused with a 429 (a right one
// still passes: many clients share an address behind a proxy or on
// loopback). Guessing tokens or flooding the log with 401s costs the
// client time.
type AuthFailures struct {
	rate    rate.Limit
	burst   int
	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

// NewAuthFailures allows burst failures per address, then perSecond.
func NewAuthFailures(perSecond float64, burst int) *AuthFailures {
	return &AuthFailures{rate: rate.Limit(perSecond), burst: burst, clients: map[string]*rate.Limiter{}}
}

// Blocked returns how long the client must wait when its failures used up
// its bucket, else 0.
func (a *AuthFailures) Blocked(client string, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	lim := a.clients[client]
	if lim == nil || lim.TokensAt(now) >= 1 {
		return 0
	}
	return time.Duration((1 - lim.TokensAt(now)) / float64(a.rate) * float64(time.Second))
}

// Fail takes one failure from the client's bucket.
func (a *AuthFailures) Fail(client string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lim := a.clients[client]
	if lim == nil {
		if len(a.clients) >= MaxAuthFailureClients {
			// Forget the clients whose bucket refilled; if none has, all
			// of them (many addresses failing at once: each new one then
			// starts with a full bucket, which still bounds it).
			for c, l := range a.clients {
				if l.TokensAt(now) >= float64(a.burst) {
					delete(a.clients, c)
				}
			}
			if len(a.clients) >= MaxAuthFailureClients {
				clear(a.clients)
			}
		}
		lim = rate.NewLimiter(a.rate, a.burst)
		a.clients[client] = lim
	}
	lim.AllowN(now, 1)
}

// ClientAddr is the address a request's failures count against: its
// remote IP without the port, an IPv6 one's /64 (a host is commonly given
// a whole /64, and could otherwise fail from a new address each time, and
// fill the table until it is cleared for everyone). Forwarded headers are
// not trusted: any client can set them.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return host
}
