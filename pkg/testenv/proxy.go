package testenv

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy in front of a server, for outage tests: Cut makes the
// server unreachable for the clients that dial Addr, Restore brings it back on
// the same address, the way a network partition or a restarted server looks.
type Proxy struct {
	t      testing.TB
	target string
	addr   string

	mu     sync.Mutex
	ln     net.Listener // nil while cut
	conns  map[net.Conn]struct{}
	gen    int // incremented by Cut: connections accepted before it must not survive it
	closed bool
	wg     sync.WaitGroup
}

const (
	proxyDialTimeout   = 5 * time.Second
	proxyRebindTimeout = 2 * time.Second
)

// NewProxy starts a proxy on 127.0.0.1 (random port) forwarding to target
// (host:port). It stops when t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: proxy listen: %v", err)
	}
	p := &Proxy{t: t, target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	p.serve(ln, 0)
	t.Cleanup(p.close)
	return p
}

// Addr is the host:port clients dial instead of the target; it stays the same
// across Cut and Restore.
func (p *Proxy) Addr() string { return p.addr }

// Cut closes every open connection and refuses new ones (the listener is
// closed, so a dial fails with "connection refused" rather than hanging).
func (p *Proxy) Cut() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.gen++
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for c := range conns {
		_ = c.Close()
	}
}

// Restore accepts connections again on the same address. It fails the test
// when the address cannot be bound again.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil || p.closed {
		return
	}
	var (
		ln  net.Listener
		err error
	)
	// The kernel may hold the port for a moment after the close in Cut.
	deadline := time.Now().Add(proxyRebindTimeout)
	for {
		ln, err = net.Listen("tcp", p.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Errorf("testenv: proxy restore on %s: %v", p.addr, err)
		return
	}
	p.ln = ln
	p.serve(ln, p.gen)
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) serve(ln net.Listener, gen int) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c, gen)
			}()
		}
	}()
}

// forward pipes client to the target until either side closes or Cut.
func (p *Proxy) forward(client net.Conn, gen int) {
	server, err := net.DialTimeout("tcp", p.target, proxyDialTimeout)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(gen, client, server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close keeps the other direction flowing, as a real
		// connection would after one side's shutdown(SHUT_WR).
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	<-done
	_ = client.Close()
	_ = server.Close()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// track registers a connection pair, unless a Cut happened since the accept.
func (p *Proxy) track(gen int, conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}
