package correlator

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
)

// A holder whose save of the state is under way when its lease runs out
// (its process paused, its link slow: here its last bytes are held on
// the way) must not overwrite the state of the next holder when those
// bytes land at last. The object store has no compare-and-set of its
// own, and nats.go's put sends its last message without waiting for the
// answer: the late write used to replace the next holder's newer state,
// which a crash of that one then restored.
func TestLateSaveOfALostTermDoesNotReplaceTheNextHoldersState(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}})
	key := r.cfg.WithDefaults().State.Key
	bucket := r.cfg.WithDefaults().State.Bucket
	// The state object's meta message: the put's last, which makes it
	// the object.
	proxy := startHoldingProxy(t, strings.TrimPrefix(r.url, "nats://"),
		[]byte("HPUB $O."+bucket+".M."+base64.URLEncoding.EncodeToString([]byte(key))+" "))

	_, jsA, stopA := r.startThrough(proxy)
	r.firstHalf()
	waitIncidents(t, r.js, event.IncidentOpened, 2)
	store, err := r.js.ObjectStore(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := store.GetInfo(context.Background(), key); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first holder saved no state")
		}
	}
	// From its next save's last message on, nothing the first holder
	// sends reaches the server: its lease runs out.
	proxy.arm()
	<-proxy.triggered

	ncB, jsB, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.url}}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(context.Background(), jsB, r.cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	ctxB, crashB := context.WithCancel(context.Background())
	ranB := make(chan error, 1)
	go func() { ranB <- b.Run(ctxB) }()
	// The next holder opens an incident and saves it.
	r.later()
	late := waitIncidents(t, r.js, event.IncidentOpened, 3)[2]
	for deadline := time.Now().Add(20 * time.Second); !savedHolds(store, key, late); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the next holder did not save incident %s", late.IncidentID)
		}
	}
	ncB.Close() // it crashes: its state stays as it saved it
	crashB()
	<-ranB

	// The first holder's held bytes land at last; one more message of its
	// stored in the same stream tells they were taken.
	stopA()
	proxy.release()
	if _, err := jsA.Publish(context.Background(), "$O."+bucket+".C.landed", nil); err != nil {
		t.Fatal(err)
	}
	if !savedHolds(store, key, late) {
		t.Fatalf("the saved state lacks incident %s, which the next holder saved: the lost term's late save replaced it", late.IncidentID)
	}
}

// savedHolds tells whether the state saved under key holds incident st
// (a read that fails, of an object being replaced, does not).
func savedHolds(store jetstream.ObjectStore, key string, st correlate.State) bool {
	data, err := store.GetBytes(context.Background(), key)
	return err == nil && bytes.Contains(data, []byte(st.IncidentID))
}

// holdingProxy forwards NATS connections to a server; once armed, it
// holds what a client sends from the message whose protocol line holds
// trigger on, until released: a process paused, or a link stalled, with
// its last writes on the way.
type holdingProxy struct {
	ln        net.Listener
	target    string
	trigger   []byte
	mu        sync.Mutex
	armed     bool
	fired     bool
	triggered chan struct{} // closed once the trigger was seen
	released  chan struct{}
}

func startHoldingProxy(t *testing.T, target string, trigger []byte) *holdingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{ln: ln, target: target, trigger: trigger, triggered: make(chan struct{}), released: make(chan struct{})}
	t.Cleanup(func() { ln.Close(); p.release() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(c, s); c.Close() }()
			go func() { p.forward(c, s); s.Close() }()
		}
	}()
	return p
}

func (p *holdingProxy) addr() string { return p.ln.Addr().String() }

// startThrough runs a correlator whose connection goes through p. stop
// cancels its run; at the test's end p is released, the run waited for
// (it logs to t until it returned) and the connection closed.
func (r *stormRig) startThrough(p *holdingProxy) (svc *Service, js jetstream.JetStream, stop context.CancelFunc) {
	t := r.t
	t.Helper()
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{"nats://" + p.addr()}}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if svc, err = New(context.Background(), js, r.cfg, r.log); err != nil {
		nc.Close()
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()
	t.Cleanup(func() { stop(); p.release(); <-ran; nc.Close() })
	return svc, js, stop
}

func (p *holdingProxy) arm() { p.mu.Lock(); p.armed = true; p.mu.Unlock() }

func (p *holdingProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.released:
	default:
		close(p.released)
	}
}

// forward copies client to server, holding from the trigger's line on
// once armed.
func (p *holdingProxy) forward(client, server net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			data := buf[:n]
			p.mu.Lock()
			at := -1
			if p.armed && !p.fired {
				at = bytes.Index(data, p.trigger)
			}
			if at >= 0 {
				p.fired = true
				close(p.triggered)
			}
			p.mu.Unlock()
			if at >= 0 {
				line := bytes.LastIndex(data[:at], []byte("\r\n")) + 2
				if line < 2 {
					line = 0
				}
				if _, err := server.Write(data[:line]); err != nil {
					return
				}
				<-p.released
				data = data[line:]
			}
			if _, err := server.Write(data); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
