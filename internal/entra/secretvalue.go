package entra

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// The JSON fields a client-secret value may hold the secret in.
var clientSecretFields = []string{"clientSecret", "client_secret"}

// ClientSecretFromValue returns the Entra client secret held in a Secrets
// Manager secret value (GRAPH_CREDENTIAL=secret). Two forms are accepted:
//   - the client secret itself, as the Entra portal shows it once ("Value",
//     not "Secret ID");
//   - a JSON object with the secret in a "clientSecret" (or
//     "client_secret") string field, other fields ignored, as the
//     console's key/value editor stores it. A value whose first character
//     (after white space) is '{' is always read as JSON.
//
// Surrounding white space is removed (a trailing newline from a file
// upload is not part of an Entra secret). The error says what is wrong with
// the value but never contains any of it.
func ClientSecretFromValue(value []byte) (string, error) {
	v := bytes.TrimSpace(value)
	switch {
	case len(v) == 0:
		return "", errors.New("the secret value is empty")
	case v[0] == '{':
		return clientSecretFromJSON(v)
	case bytes.HasPrefix(v, []byte("-----BEGIN")):
		return "", errors.New("the secret value is a PEM document, not a client secret (a certificate needs GRAPH_CREDENTIAL=certificate)")
	case bytes.ContainsFunc(v, notSecretChar):
		return "", errors.New("the secret value contains white space or control characters inside: an Entra client secret has none (store the secret itself, or a JSON object with a \"clientSecret\" field)")
	}
	return string(v), nil
}

// notSecretChar reports the characters an Entra client secret never has.
func notSecretChar(r rune) bool { return r < 0x21 || r == 0x7f }

func clientSecretFromJSON(v []byte) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil {
		// json's messages quote the offending character; give the offset
		// only.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return "", fmt.Errorf("the secret value starts like JSON but is not valid JSON (error at byte %d)", se.Offset)
		}
		return "", errors.New("the secret value starts like JSON but is not a JSON object")
	}
	var found, from string
	for _, f := range clientSecretFields {
		raw, ok := obj[f]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", fmt.Errorf("the secret value's %q field is not a string", f)
		}
		s = strings.TrimSpace(s)
		switch {
		case s == "":
			return "", fmt.Errorf("the secret value's %q field is empty", f)
		case strings.ContainsFunc(s, notSecretChar):
			return "", fmt.Errorf("the secret value's %q field contains white space or control characters inside: an Entra client secret has none", f)
		}
		if found != "" && s != found {
			return "", fmt.Errorf("the secret value has both %q and %q, with different values", from, f)
		}
		found, from = s, f
	}
	if found == "" {
		return "", fmt.Errorf("the secret value is a JSON object without a %q (or %q) string field", clientSecretFields[0], clientSecretFields[1])
	}
	return found, nil
}

// Certificate is a client certificate read from a secret value.
type Certificate struct {
	// Chain is the certificate whose key signs (first) and any other
	// certificates of the value (intermediates), in their order.
	Chain []*x509.Certificate
	Key   *rsa.PrivateKey
	// Thumbprint is the SHA-1 hex thumbprint of Chain[0], as the Entra
	// portal lists it under "Certificates & secrets".
	Thumbprint string
}

// CertificateFromValue returns the certificate and private key held in a
// Secrets Manager secret value (GRAPH_CREDENTIAL=certificate): a PEM
// document with the certificate, its private key (PKCS#8 "PRIVATE KEY" or
// PKCS#1 "RSA PRIVATE KEY", unencrypted: Secrets Manager encrypts the whole
// value with KMS) and optionally the intermediate certificates; or, stored
// as a binary secret, a PKCS#12 (.pfx) file without a password. Blocks may
// come in any order. The key must be RSA: Entra's certificate credentials
// (and azidentity's) sign assertions with RSA. A certificate already
// expired at now is refused here, with its thumbprint, rather than by Entra
// with a less obvious message. Errors never contain key material.
func CertificateFromValue(value []byte, now time.Time) (*Certificate, error) {
	for rest := value; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "EC PRIVATE KEY":
			return nil, errors.New("the certificate's private key is an EC key: Entra certificate credentials need an RSA key")
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted: store it unencrypted (Secrets Manager encrypts the secret with KMS)")
		}
	}
	certs, key, err := azidentity.ParseCertificates(value, nil)
	if err != nil {
		return nil, fmt.Errorf("the secret value is not a PEM certificate with its private key, nor a PKCS#12 file without password: %v", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the certificate's private key is a %T: Entra certificate credentials need an RSA key", key)
	}
	c := &Certificate{Key: rk}
	for _, cert := range certs {
		if pub, ok := cert.PublicKey.(*rsa.PublicKey); ok && pub.Equal(&rk.PublicKey) && c.Thumbprint == "" {
			sum := sha1.Sum(cert.Raw)
			c.Thumbprint = strings.ToUpper(hex.EncodeToString(sum[:]))
			c.Chain = append([]*x509.Certificate{cert}, c.Chain...)
			continue
		}
		c.Chain = append(c.Chain, cert)
	}
	if c.Thumbprint == "" {
		return nil, fmt.Errorf("the private key belongs to none of the %d certificate(s) in the secret value", len(certs))
	}
	leaf := c.Chain[0]
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("the certificate %s (thumbprint %s) expired on %s: upload a new one to the app registration and to the secret",
			leaf.Subject, c.Thumbprint, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return c, nil
}
