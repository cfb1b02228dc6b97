package entra

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/awsfake"
	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/review"
)

// clientID is the app the emulator knows.
var clientID = graphemu.DefaultOptions().ClientID

// testCert is a certificate with its key and the CA that issued it.
type testCert struct {
	cert, ca *x509.Certificate
	key      *rsa.PrivateKey
}

var (
	certOnce  sync.Once
	certCache [2]testCert
)

// testCerts returns two client certificates issued by one intermediate CA
// (RSA keys are slow to make: made once per test binary).
func testCerts(t *testing.T) [2]testCert {
	t.Helper()
	certOnce.Do(func() {
		caKey := mustRSA(t)
		caTpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "byodrop test intermediate CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		ca := mustCert(t, caTpl, caTpl, &caKey.PublicKey, caKey)
		for i := range certCache {
			key := mustRSA(t)
			tpl := &x509.Certificate{
				SerialNumber: big.NewInt(int64(10 + i)), Subject: pkix.Name{CommonName: "byodrop graph client"},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
				KeyUsage: x509.KeyUsageDigitalSignature,
			}
			certCache[i] = testCert{cert: mustCert(t, tpl, ca, &key.PublicKey, caKey), ca: ca, key: key}
		}
	})
	return certCache
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t *testing.T, tpl, parent *x509.Certificate, pub any, signer any) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemBlock(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8(t *testing.T, key any) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

func TestCertificateFromValueAcceptsTheUsualPEMForms(t *testing.T) {
	c := testCerts(t)[0]
	leaf, ca := pemBlock("CERTIFICATE", c.cert.Raw), pemBlock("CERTIFICATE", c.ca.Raw)
	tests := []struct {
		name  string
		value string
		chain int
	}{
		{"PKCS#8 key after the certificate", leaf + pkcs8(t, c.key), 1},
		{"PKCS#1 key before the certificate", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(c.key)) + leaf, 1},
		{"with the intermediate CA after the key", leaf + pkcs8(t, c.key) + ca, 2},
		{"intermediate first: the signing certificate still leads", ca + pkcs8(t, c.key) + leaf, 2},
		{"text around the blocks (openssl's bag attributes)", "Bag Attributes\n  localKeyID: 01\n" + leaf + "subject=CN=x\n" + pkcs8(t, c.key), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CertificateFromValue([]byte(tc.value), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Chain) != tc.chain || !got.Chain[0].Equal(c.cert) || !got.Key.Equal(c.key) {
				t.Fatalf("chain %d (want %d), leaf ok %v", len(got.Chain), tc.chain, got.Chain[0].Equal(c.cert))
			}
			if len(got.Thumbprint) != 40 || strings.ToUpper(got.Thumbprint) != got.Thumbprint {
				t.Fatalf("thumbprint %q: want the portal's 40 upper-case hex digits", got.Thumbprint)
			}
		})
	}
}

func TestCertificateFromValueRefusals(t *testing.T) {
	cs := testCerts(t)
	c := cs[0]
	leaf := pemBlock("CERTIFICATE", c.cert.Raw)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	rsaKeyPEM := pkcs8(t, c.key)
	tests := []struct {
		name, value, want string
		now               time.Time
	}{
		{"empty", "", "not a PEM certificate", time.Now()},
		{"garbage", "hello", "not a PEM certificate", time.Now()},
		{"no key", leaf, "no private key", time.Now()},
		{"no certificate", rsaKeyPEM, "no certificate", time.Now()},
		{"EC key (SEC 1)", leaf + pemBlock("EC PRIVATE KEY", ecDER), "RSA key", time.Now()},
		{"EC key (PKCS#8)", leaf + pkcs8(t, ec), "RSA key", time.Now()},
		{"encrypted key", leaf + pemBlock("ENCRYPTED PRIVATE KEY", []byte("x")), "unencrypted", time.Now()},
		{"the key of another certificate", leaf + pkcs8(t, cs[1].key), "belongs to none", time.Now()},
		{"expired", leaf + rsaKeyPEM, "expired on", time.Now().Add(48 * time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CertificateFromValue([]byte(tc.value), tc.now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----") || strings.Contains(err.Error(), strings.Split(rsaKeyPEM, "\n")[1]) {
				t.Fatalf("key material in the error: %v", err)
			}
		})
	}
}

func TestCertificateModeGetsTokensWithTheCertificateFromSecretsManager(t *testing.T) {
	cs := testCerts(t)
	c := cs[0]
	leaf, ca := pemBlock("CERTIFICATE", c.cert.Raw), pemBlock("CERTIFICATE", c.ca.Raw)
	tests := []struct {
		name  string
		value string
		x5c   int // certificates azidentity must send in x5c
	}{
		{"certificate and key", leaf + pkcs8(t, c.key), 0},
		{"with its chain: the chain is sent", leaf + pkcs8(t, c.key) + ca, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, graphemu.Options{}, awsfake.Options{}, certificateCheck(c.cert, clientID, tc.x5c))
			arn, _ := w.aws.PutSecret("byodrop/graph-cert", tc.value)
			src := w.source(t, map[string]string{config.EnvCredential: config.CredentialCertificate, config.EnvSecretARN: arn})
			cl := w.graphClient(t, src)
			ctx := testContext(t)
			for i := range 3 {
				if _, err := cl.Create(ctx, newTarget(i)); err != nil {
					t.Fatalf("create %d: %v", i, err)
				}
			}
			if n, m := len(w.accepted()), len(w.aws.Calls("GetSecretValue")); n != 1 || m != 1 {
				t.Fatalf("%d assertions accepted, %d secret reads; want 1 and 1", n, m)
			}
		})
	}
}

func TestCertificateModeReadsTheRenewedCertificateAfterGraphRefusesTheToken(t *testing.T) {
	cs := testCerts(t)
	var mu sync.Mutex
	registered := cs[0] // the certificate on the app registration
	w := newWorld(t, graphemu.Options{}, awsfake.Options{}, func(w *world, jwt string) error {
		mu.Lock()
		c := registered
		mu.Unlock()
		return certificateCheck(c.cert, clientID, 0)(w, jwt)
	})
	arn, _ := w.aws.PutSecret("byodrop/graph-cert", pemBlock("CERTIFICATE", cs[0].cert.Raw)+pkcs8(t, cs[0].key))
	src := w.source(t, map[string]string{config.EnvCredential: config.CredentialCertificate, config.EnvSecretARN: arn})
	cl := w.graphClient(t, src)
	ctx := testContext(t)
	s, err := cl.Create(ctx, newTarget(1))
	if err != nil {
		t.Fatal(err)
	}
	// Renewal: the new certificate replaces the old one in the secret and
	// on the app; the old token stops working.
	w.aws.PutSecret("byodrop/graph-cert", pemBlock("CERTIFICATE", cs[1].cert.Raw)+pkcs8(t, cs[1].key))
	mu.Lock()
	registered = cs[1]
	mu.Unlock()
	w.emu.ExpireTokens()
	if _, err := cl.Get(ctx, newTarget(1), s.ID); err != nil {
		t.Fatalf("get after the renewal: %v", err)
	}
	if n, bad := w.emu.Count("token", http.StatusOK), w.emu.Count("token", http.StatusUnauthorized); n != 2 || bad != 0 {
		t.Fatalf("token requests: %d accepted, %d refused", n, bad)
	}
	if n := len(w.aws.Calls("GetSecretValue")); n != 2 {
		t.Fatalf("%d GetSecretValue calls, want 2", n)
	}
}

func TestCertificateModeRefusedByEntraIsNotTransient(t *testing.T) {
	cs := testCerts(t)
	w := newWorld(t, graphemu.Options{}, awsfake.Options{}, certificateCheck(cs[0].cert, clientID, 0))
	// The secret holds a certificate the app registration does not know.
	arn, _ := w.aws.PutSecret("byodrop/graph-cert", pemBlock("CERTIFICATE", cs[1].cert.Raw)+pkcs8(t, cs[1].key))
	src := w.source(t, map[string]string{config.EnvCredential: config.CredentialCertificate, config.EnvSecretARN: arn})
	_, err := src.Token(testContext(t), false)
	if err == nil || !strings.Contains(err.Error(), "AADSTS700027") {
		t.Fatalf("err %v, want Entra's AADSTS700027", err)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("key material in the error: %v", err)
	}
	if k := review.KindOf(err); k != review.Internal {
		t.Fatalf("kind %v, want internal: a wrong certificate is a deployment problem", k)
	}
}
