package amconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// HTTPConfig is an http_config as Alertmanager 0.25 reads it (Prometheus
// common's HTTP client configuration), kept for the sender. As in
// Alertmanager, bearer_token and bearer_token_file are turned into
// Authorization of type Bearer.
type HTTPConfig struct {
	BasicAuth     *BasicAuth
	Authorization *Authorization
	OAuth2        *OAuth2
	// ProxyURL is proxy_url as written ("" for none).
	ProxyURL           string
	ProxyConnectHeader map[string][]string
	TLSConfig          TLSConfig
	// FollowRedirects and EnableHTTP2 default to true.
	FollowRedirects bool
	EnableHTTP2     bool
}

// DefaultHTTPConfig is the http_config of a webhook when neither it nor
// the global section has one.
func DefaultHTTPConfig() *HTTPConfig {
	return &HTTPConfig{FollowRedirects: true, EnableHTTP2: true}
}

// BasicAuth is http_config.basic_auth.
type BasicAuth struct {
	Username, Password, PasswordFile string
}

// Authorization is http_config.authorization: Type defaults to Bearer.
type Authorization struct {
	Type, Credentials, CredentialsFile string
}

// OAuth2 is http_config.oauth2 (client credentials).
type OAuth2 struct {
	ClientID, ClientSecret, ClientSecretFile string
	Scopes                                   []string
	TokenURL                                 string
	EndpointParams                           map[string]string
	ProxyURL                                 string
	TLSConfig                                TLSConfig
}

// TLSConfig is a tls_config.
type TLSConfig struct {
	CAFile, CertFile, KeyFile, ServerName string
	InsecureSkipVerify                    bool
	// MinVersion and MaxVersion are TLS10 to TLS13, or "".
	MinVersion, MaxVersion string
}

func (h *HTTPConfig) setDirectory(dir string) {
	h.TLSConfig.setDirectory(dir)
	if h.BasicAuth != nil {
		h.BasicAuth.PasswordFile = joinDir(dir, h.BasicAuth.PasswordFile)
	}
	if h.Authorization != nil {
		h.Authorization.CredentialsFile = joinDir(dir, h.Authorization.CredentialsFile)
	}
	if h.OAuth2 != nil {
		h.OAuth2.ClientSecretFile = joinDir(dir, h.OAuth2.ClientSecretFile)
		h.OAuth2.TLSConfig.setDirectory(dir)
	}
}

func (t *TLSConfig) setDirectory(dir string) {
	t.CAFile = joinDir(dir, t.CAFile)
	t.CertFile = joinDir(dir, t.CertFile)
	t.KeyFile = joinDir(dir, t.KeyFile)
}

// httpConfig decodes an http_config; nil if null or invalid (errors
// reported).
func (d *decoder) httpConfig(n *yaml.Node, path string) *HTTPConfig {
	if isNull(n) {
		return nil
	}
	entries, ok := d.mapping(n, path)
	if !ok {
		return nil
	}
	before := len(d.errs)
	h := DefaultHTTPConfig()
	var bearer, bearerFile string
	for _, e := range entries {
		switch e.key {
		case "basic_auth":
			if isNull(e.val) {
				continue
			}
			h.BasicAuth = &BasicAuth{}
			d.fields(e, map[string]*string{"username": &h.BasicAuth.Username, "password": &h.BasicAuth.Password, "password_file": &h.BasicAuth.PasswordFile})
		case "authorization":
			if isNull(e.val) {
				continue
			}
			h.Authorization = &Authorization{}
			d.fields(e, map[string]*string{"type": &h.Authorization.Type, "credentials": &h.Authorization.Credentials, "credentials_file": &h.Authorization.CredentialsFile})
		case "oauth2":
			if isNull(e.val) {
				continue
			}
			h.OAuth2 = d.oauth2(e)
		case "bearer_token":
			bearer, _ = d.str(e.val, e.path)
		case "bearer_token_file":
			bearerFile, _ = d.str(e.val, e.path)
		case "proxy_url":
			h.ProxyURL = d.proxyURL(e)
		case "proxy_connect_header":
			h.ProxyConnectHeader = d.header(e)
		case "tls_config":
			d.tlsConfig(e.val, e.path, &h.TLSConfig)
		case "follow_redirects":
			h.FollowRedirects, _ = d.boolean(e.val, e.path)
		case "enable_http2":
			h.EnableHTTP2, _ = d.boolean(e.val, e.path)
		default:
			d.unknownKey(e, "basic_auth, authorization, oauth2, bearer_token, bearer_token_file, proxy_url, proxy_connect_header, tls_config, follow_redirects, enable_http2")
		}
	}
	if len(d.errs) > before {
		return nil
	}
	if err := h.validate(bearer, bearerFile); err != nil {
		d.errorf(resolve(n), path, "%v", err)
		return nil
	}
	return h
}

// validate applies Prometheus common's rules (at most one way to
// authenticate, and so on) and turns a bearer token into Authorization.
func (h *HTTPConfig) validate(bearer, bearerFile string) error {
	if bearer != "" && bearerFile != "" {
		return errors.New("at most one of bearer_token and bearer_token_file may be set")
	}
	if (h.BasicAuth != nil || h.OAuth2 != nil) && (bearer != "" || bearerFile != "") {
		return errors.New("at most one of basic_auth, oauth2, bearer_token and bearer_token_file may be set")
	}
	if h.BasicAuth != nil && h.BasicAuth.Password != "" && h.BasicAuth.PasswordFile != "" {
		return errors.New("at most one of basic_auth.password and basic_auth.password_file may be set")
	}
	if h.Authorization != nil {
		if bearer != "" || bearerFile != "" {
			return errors.New("authorization cannot be set with bearer_token or bearer_token_file")
		}
		if h.Authorization.Credentials != "" && h.Authorization.CredentialsFile != "" {
			return errors.New("at most one of authorization.credentials and authorization.credentials_file may be set")
		}
		h.Authorization.Type = strings.TrimSpace(h.Authorization.Type)
		if h.Authorization.Type == "" {
			h.Authorization.Type = "Bearer"
		}
		if strings.ToLower(h.Authorization.Type) == "basic" {
			return errors.New(`authorization.type cannot be "basic": use basic_auth`)
		}
		if h.BasicAuth != nil || h.OAuth2 != nil {
			return errors.New("at most one of basic_auth, oauth2 and authorization may be set")
		}
	} else if bearer != "" {
		h.Authorization = &Authorization{Type: "Bearer", Credentials: bearer}
	} else if bearerFile != "" {
		h.Authorization = &Authorization{Type: "Bearer", CredentialsFile: bearerFile}
	}
	if o := h.OAuth2; o != nil {
		switch {
		case h.BasicAuth != nil:
			return errors.New("at most one of basic_auth, oauth2 and authorization may be set")
		case o.ClientID == "":
			return errors.New("oauth2.client_id is required")
		case o.ClientSecret == "" && o.ClientSecretFile == "":
			return errors.New("one of oauth2.client_secret and oauth2.client_secret_file is required")
		case o.TokenURL == "":
			return errors.New("oauth2.token_url is required")
		case o.ClientSecret != "" && o.ClientSecretFile != "":
			return errors.New("at most one of oauth2.client_secret and oauth2.client_secret_file may be set")
		}
	}
	if len(h.ProxyConnectHeader) > 0 && h.ProxyURL == "" {
		return errors.New("proxy_connect_header needs proxy_url")
	}
	return nil
}

// fields decodes a mapping of string keys into the given strings.
func (d *decoder) fields(e entry, into map[string]*string) {
	entries, _ := d.mapping(e.val, e.path)
	for _, f := range entries {
		p, ok := into[f.key]
		if !ok {
			d.unknownKey(f, strings.Join(slices.Sorted(maps.Keys(into)), ", "))
			continue
		}
		*p, _ = d.str(f.val, f.path)
	}
}

func (d *decoder) oauth2(e entry) *OAuth2 {
	o := &OAuth2{}
	entries, _ := d.mapping(e.val, e.path)
	for _, f := range entries {
		switch f.key {
		case "client_id":
			o.ClientID, _ = d.str(f.val, f.path)
		case "client_secret":
			o.ClientSecret, _ = d.str(f.val, f.path)
		case "client_secret_file":
			o.ClientSecretFile, _ = d.str(f.val, f.path)
		case "scopes":
			o.Scopes, _ = d.stringList(f.val, f.path)
		case "token_url":
			o.TokenURL, _ = d.str(f.val, f.path)
		case "endpoint_params":
			_, o.EndpointParams, _ = d.stringMap(f.val, f.path)
		case "proxy_url":
			o.ProxyURL = d.proxyURL(f)
		case "tls_config":
			d.tlsConfig(f.val, f.path, &o.TLSConfig)
		default:
			d.unknownKey(f, "client_id, client_secret, client_secret_file, scopes, token_url, endpoint_params, proxy_url, tls_config")
		}
	}
	return o
}

func (d *decoder) proxyURL(e entry) string {
	s, ok := d.str(e.val, e.path)
	if !ok {
		return ""
	}
	if _, err := url.Parse(s); err != nil {
		d.errorf(resolve(e.val), e.path, "not a URL")
		return ""
	}
	return s
}

// header decodes proxy_connect_header: header name to a list of values.
func (d *decoder) header(e entry) map[string][]string {
	entries, _ := d.mapping(e.val, e.path)
	if len(entries) == 0 {
		return nil
	}
	h := make(map[string][]string, len(entries))
	for _, f := range entries {
		h[f.key], _ = d.stringList(f.val, f.path)
	}
	return h
}

var tlsVersions = map[string]uint16{"TLS10": tls.VersionTLS10, "TLS11": tls.VersionTLS11, "TLS12": tls.VersionTLS12, "TLS13": tls.VersionTLS13}

// Versions are MinVersion and MaxVersion as crypto/tls constants (0:
// unset).
func (t TLSConfig) Versions() (minVersion, maxVersion uint16) {
	return tlsVersions[t.MinVersion], tlsVersions[t.MaxVersion]
}

func (d *decoder) tlsConfig(n *yaml.Node, path string, t *TLSConfig) {
	entries, _ := d.mapping(n, path)
	for _, f := range entries {
		switch f.key {
		case "ca_file":
			t.CAFile, _ = d.str(f.val, f.path)
		case "cert_file":
			t.CertFile, _ = d.str(f.val, f.path)
		case "key_file":
			t.KeyFile, _ = d.str(f.val, f.path)
		case "server_name":
			t.ServerName, _ = d.str(f.val, f.path)
		case "insecure_skip_verify":
			t.InsecureSkipVerify, _ = d.boolean(f.val, f.path)
		case "min_version", "max_version":
			v, ok := d.str(f.val, f.path)
			if !ok || isNull(f.val) {
				continue
			}
			if _, known := tlsVersions[v]; !known {
				d.errorf(resolve(f.val), f.path, "unknown TLS version %q (TLS10, TLS11, TLS12 or TLS13)", v)
				continue
			}
			if f.key == "min_version" {
				t.MinVersion = v
			} else {
				t.MaxVersion = v
			}
		default:
			d.unknownKey(f, "ca_file, cert_file, key_file, server_name, insecure_skip_verify, min_version, max_version")
		}
	}
}

// checkHTTPURL accepts what Alertmanager accepts as a URL: http or https
// with a host. The error never contains the URL, which often holds a
// token.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("unsupported URL scheme %q (http or https)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("the URL has no host")
	}
	return nil
}

// checkHostPort accepts host:port with a port, as smtp_smarthost.
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("not host:port: %v", err)
	}
	if port == "" {
		return fmt.Errorf("address %q: the port is empty", s)
	}
	return nil
}
