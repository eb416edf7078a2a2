package notifier

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"

	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// transportFor is the transport a receiver's http_config asks for: its
// tls_config (CA file, client certificate, server name, skipping
// verification, TLS versions), proxy_url with proxy_connect_header, and
// enable_http2. nil: the client's own will do. The files are read here, at
// start, so a missing CA or key fails then, naming its key. oauth2 is
// refused by name: aiops does not fetch tokens yet.
func transportFor(hc *amconfig.HTTPConfig) (http.RoundTripper, error) {
	if hc == nil {
		return nil, nil
	}
	if hc.OAuth2 != nil {
		return nil, errors.New("http_config.oauth2 is not supported: give the token with authorization.credentials_file")
	}
	tc := hc.TLSConfig
	if tc == (amconfig.TLSConfig{}) && hc.ProxyURL == "" && hc.EnableHTTP2 {
		return nil, nil
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	cfg, err := tlsConfig(tc)
	if err != nil {
		return nil, err
	}
	t.TLSClientConfig = cfg
	if hc.ProxyURL != "" {
		u, err := url.Parse(hc.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("http_config.proxy_url: %w", err)
		}
		t.Proxy = http.ProxyURL(u)
		t.ProxyConnectHeader = http.Header(hc.ProxyConnectHeader)
	}
	if !hc.EnableHTTP2 {
		t.ForceAttemptHTTP2 = false
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return t, nil
}

// redirectsFor is what http_config.follow_redirects asks for: true unless
// written false, as in Alertmanager, so a receiver's configuration decides
// and not the delivery client's own follow_redirects (false, the Standard
// Webhooks advice, for what has no http_config).
func redirectsFor(hc *amconfig.HTTPConfig) webhook.RedirectPolicy {
	switch {
	case hc == nil:
		return webhook.RedirectsDefault
	case hc.FollowRedirects:
		return webhook.RedirectsFollow
	}
	return webhook.RedirectsRefuse
}

func tlsConfig(tc amconfig.TLSConfig) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: tc.ServerName, InsecureSkipVerify: tc.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // insecure_skip_verify is the operator's choice, as in Alertmanager
	minVersion, maxVersion := tc.Versions()
	if minVersion != 0 {
		cfg.MinVersion = minVersion
	}
	cfg.MaxVersion = maxVersion // 0: the highest crypto/tls supports
	if tc.CAFile != "" {
		pem, err := os.ReadFile(tc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("http_config.tls_config.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("http_config.tls_config.ca_file: %s holds no PEM certificate", tc.CAFile)
		}
		cfg.RootCAs = pool
	}
	if tc.CertFile != "" || tc.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("http_config.tls_config.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
