package agent

// TLS for the API: --tls-cert and --tls-key (PEM), reloaded on SIGHUP
// (ReloadTLS); --tls-client-ca requires client certificates signed by it.
// The certificate, key and client CA are one value swapped atomically: a
// handshake sees the old set or the new one, never a mix, and a reload
// that fails keeps the old set.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// maxPEMFile bounds a certificate, key or CA file read into memory.
const maxPEMFile = 1 << 20

type apiTLS struct {
	certFile, keyFile, caFile string
	cur                       atomic.Pointer[tlsMaterial]
}

// tlsMaterial is one loaded set: the certificate and, with a client CA,
// the handshake config that verifies clients against it.
type tlsMaterial struct {
	cert     *tls.Certificate
	leaf     *x509.Certificate
	clientCf *tls.Config // nil without a client CA
}

func newAPITLS(cfg Config) (*apiTLS, error) {
	t := &apiTLS{certFile: cfg.TLSCert, keyFile: cfg.TLSKey, caFile: cfg.TLSClientCA}
	m, err := t.load()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	t.cur.Store(m)
	return t, nil
}

func readPEMFile(what, name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s %s is over %d bytes: not a PEM certificate or key", what, name, maxPEMFile)
	}
	return b, nil
}

func (t *apiTLS) load() (*tlsMaterial, error) {
	cb, err := readPEMFile("tls-cert", t.certFile)
	if err != nil {
		return nil, err
	}
	kb, err := readPEMFile("tls-key", t.keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return nil, fmt.Errorf("tls-cert %s and tls-key %s: %w", t.certFile, t.keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls-cert %s: %w", t.certFile, err)
		}
	}
	m := &tlsMaterial{cert: &cert, leaf: leaf}
	if t.caFile != "" {
		b, err := readPEMFile("tls-client-ca", t.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls-client-ca %s holds no PEM certificate", t.caFile)
		}
		m.clientCf = &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"},
			Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	}
	return m, nil
}

// serverConfig is the listener's TLS config: the certificate comes from
// the current set at each handshake, and so does the client CA.
func (t *apiTLS) serverConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.cur.Load().cert, nil }}
	if t.caFile != "" {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return t.cur.Load().clientCf, nil }
	}
	return c
}

func describeCert(c *x509.Certificate) []any {
	return []any{"subject", c.Subject.String(), "serial", c.SerialNumber.Text(16), "not_after", c.NotAfter.UTC().Format(time.RFC3339)}
}

// ReloadTLS reads the API's certificate, key and client CA again (the
// agent command calls it on SIGHUP). On failure it logs, keeps serving the
// set in use and returns the error.
func (a *Agent) ReloadTLS() error {
	if a.tls == nil {
		a.log.Info("tls reload: the API does not serve TLS (no --tls-cert); nothing to reload")
		return errors.New("the API does not serve TLS: nothing to reload")
	}
	m, err := a.tls.load()
	if err != nil {
		a.log.Error("tls reload failed; still serving the certificate loaded before", append([]any{"err", err}, describeCert(a.tls.cur.Load().leaf)...)...)
		return err
	}
	a.tls.cur.Store(m)
	a.log.Info("tls reloaded", describeCert(m.leaf)...)
	warnCertTimes(a, m.leaf)
	return nil
}

func warnCertTimes(a *Agent, c *x509.Certificate) {
	now := time.Now()
	if now.After(c.NotAfter) || now.Before(c.NotBefore) {
		a.log.Warn("the API's TLS certificate is not valid now: clients will refuse it", describeCert(c)...)
	}
}
