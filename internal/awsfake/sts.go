package awsfake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"math/big"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// stsNamespace is the XML namespace of STS answers.
const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// stsVersion is the only API version STS has.
const stsVersion = "2011-06-15"

// awsClaims is the namespace of the AWS-specific claims of a web identity
// token.
const awsClaims = "https://sts.amazonaws.com/"

// Limits of GetWebIdentityToken (STS API reference).
const (
	minDurationSeconds     = 60
	maxDurationSeconds     = 3600
	defaultDurationSeconds = 300
	maxAudiences           = 10
	maxAudienceLength      = 1000
)

// signingAlgorithms are the values SigningAlgorithm accepts.
var signingAlgorithms = []string{"RS256", "ES384"}

// serveQuery answers the Query protocol of STS: POST / with a form body
// naming Action and Version.
func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request) {
	c := Call{Params: map[string]string{}}
	c.Region, c.Service, _ = credentialScope(r)
	fail := func(status int, code, msg string) {
		c.Status, c.Code = status, code
		s.record(c)
		writeQueryError(w, status, code, msg)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		fail(http.StatusBadRequest, "InvalidAction", "the request must be a form (application/x-www-form-urlencoded)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	f := r.PostForm
	for k := range f {
		c.Params[k] = f.Get(k)
	}
	c.Action = f.Get("Action")
	if code, msg := s.checkSignature(r, "sts"); code != "" {
		fail(http.StatusForbidden, code, msg)
		return
	}
	switch {
	case c.Action == "":
		fail(http.StatusBadRequest, "MissingAction", "Missing Action")
		return
	case f.Get("Version") != stsVersion:
		fail(http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", c.Action, f.Get("Version")))
		return
	case c.Action != "GetWebIdentityToken":
		fail(http.StatusBadRequest, "InvalidAction", "Could not find operation "+c.Action+" for version "+stsVersion)
		return
	}
	if flt := s.takeFault(c.Action); flt != nil {
		fail(flt.Status, flt.Code, flt.Message)
		return
	}

	// Audience.member.1, Audience.member.2, …
	var auds []string
	for i := 1; ; i++ {
		a, ok := f["Audience.member."+strconv.Itoa(i)]
		if !ok {
			break
		}
		auds = append(auds, a[0])
	}
	alg := f.Get("SigningAlgorithm")
	dur := defaultDurationSeconds
	if v, ok := f["DurationSeconds"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < minDurationSeconds || n > maxDurationSeconds {
			fail(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between %d and %d", v[0], minDurationSeconds, maxDurationSeconds))
			return
		}
		dur = n
	}
	switch {
	case len(auds) == 0:
		fail(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at 'audience' failed to satisfy constraint: Member must not be null")
		return
	case len(auds) > maxAudiences:
		fail(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value at 'audience' failed to satisfy constraint: Member must have length less than or equal to %d", maxAudiences))
		return
	case alg == "":
		fail(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at 'signingAlgorithm' failed to satisfy constraint: Member must not be null")
		return
	case !slices.Contains(signingAlgorithms, alg):
		fail(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [%s]", alg, strings.Join(signingAlgorithms, ", ")))
		return
	}
	for _, a := range auds {
		if a == "" || len(a) > maxAudienceLength {
			fail(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value at 'audience' failed to satisfy constraint: Member must have length between 1 and %d", maxAudienceLength))
			return
		}
	}

	s.mu.Lock()
	disabled := s.federationDisabled
	s.mu.Unlock()
	denied := s.opts.MaxDurationSeconds > 0 && dur > s.opts.MaxDurationSeconds
	if s.opts.AllowedAudiences != nil {
		for _, a := range auds {
			if !slices.Contains(s.opts.AllowedAudiences, a) {
				denied = true
			}
		}
	}
	switch {
	case disabled:
		fail(http.StatusForbidden, "OutboundWebIdentityFederationDisabledException", "Outbound web identity federation is disabled for this account.")
		return
	case denied:
		fail(http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: %s is not authorized to perform: sts:GetWebIdentityToken because no identity-based policy allows the sts:GetWebIdentityToken action", s.opts.Principal))
		return
	}

	now := s.opts.Now()
	exp := now.Add(time.Duration(dur) * time.Second).Truncate(time.Second)
	jwt, err := s.mint(alg, auds, now, exp)
	if err != nil {
		fail(http.StatusInternalServerError, "InternalFailure", err.Error())
		return
	}
	c.Status = http.StatusOK
	s.record(c)
	type result struct {
		WebIdentityToken string
		Expiration       string
	}
	type response struct {
		XMLName  xml.Name `xml:"GetWebIdentityTokenResponse"`
		Xmlns    string   `xml:"xmlns,attr"`
		Result   result   `xml:"GetWebIdentityTokenResult"`
		Metadata struct {
			RequestID string `xml:"RequestId"`
		} `xml:"ResponseMetadata"`
	}
	out := response{Xmlns: stsNamespace, Result: result{WebIdentityToken: jwt, Expiration: exp.UTC().Format(time.RFC3339)}}
	out.Metadata.RequestID = newUUID()
	writeXML(w, http.StatusOK, out)
}

// mint issues a web identity token: the claims of the IAM user guide's
// "Understanding token claims", signed with the key of alg.
func (s *Server) mint(alg string, auds []string, now, exp time.Time) (string, error) {
	var aud any = auds
	if len(auds) == 1 {
		aud = auds[0]
	}
	claims := map[string]any{
		"iss": s.Issuer(),
		"sub": s.opts.Principal,
		"aud": aud,
		"iat": now.Unix(),
		"exp": exp.Unix(),
		"jti": newUUID(),
		awsClaims: map[string]any{
			"aws_account":   s.opts.Account,
			"source_region": s.opts.Region,
		},
	}
	kid := s.rsaID
	if alg == "ES384" {
		kid = s.ecID
	}
	hdr, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", "kid": kid})
	body, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	var sig []byte
	switch alg {
	case "RS256":
		h := sha256.Sum256([]byte(signing))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, s.rsa, crypto.SHA256, h[:]); err != nil {
			return "", err
		}
	case "ES384":
		h := sha512.Sum384([]byte(signing))
		r, ss, err := ecdsa.Sign(rand.Reader, s.ec, h[:])
		if err != nil {
			return "", err
		}
		sig = make([]byte, 96)
		r.FillBytes(sig[:48])
		ss.FillBytes(sig[48:])
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// VerifyWebIdentityToken checks a web identity token the way a relying
// party (Entra, for a federated identity credential) does: signed by one
// of this issuer's keys with the algorithm its header names, issued by
// Issuer(), for subject and audience, and not expired on the fake's
// clock. The error says which check failed.
func (s *Server) VerifyWebIdentityToken(jwt, audience, subject string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a compact JWT: %d parts", len(parts))
	}
	var hdr struct{ Alg, Kid string }
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	signing := []byte(parts[0] + "." + parts[1])
	switch {
	case hdr.Alg == "RS256" && hdr.Kid == s.rsaID:
		h := sha256.Sum256(signing)
		if err := rsa.VerifyPKCS1v15(&s.rsa.PublicKey, crypto.SHA256, h[:], sig); err != nil {
			return errors.New("RS256 signature does not verify with the issuer's key")
		}
	case hdr.Alg == "ES384" && hdr.Kid == s.ecID:
		h := sha512.Sum384(signing)
		if len(sig) != 96 || !ecdsa.Verify(&s.ec.PublicKey, h[:], new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])) {
			return errors.New("ES384 signature does not verify with the issuer's key")
		}
	default:
		return fmt.Errorf("no key of the issuer has kid %q and alg %q", hdr.Kid, hdr.Alg)
	}
	var claims struct {
		Iss, Sub string
		Aud      json.RawMessage
		Exp, Iat *int64
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	var auds []string
	if err := json.Unmarshal(claims.Aud, &auds); err != nil {
		var one string
		if json.Unmarshal(claims.Aud, &one) != nil {
			return errors.New("aud is neither a string nor a list of strings")
		}
		auds = []string{one}
	}
	now := s.opts.Now()
	switch {
	case claims.Iss != s.Issuer():
		return fmt.Errorf("issuer %q, want %q", claims.Iss, s.Issuer())
	case claims.Sub != subject:
		return fmt.Errorf("subject %q, want %q", claims.Sub, subject)
	case !slices.Contains(auds, audience):
		return fmt.Errorf("audience %q, want %q", auds, audience)
	case claims.Exp == nil:
		return errors.New("no exp claim")
	case !now.Before(time.Unix(*claims.Exp, 0)):
		return fmt.Errorf("expired at %s (now %s)", time.Unix(*claims.Exp, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case claims.Iat == nil || time.Unix(*claims.Iat, 0).After(now.Add(5*time.Minute)):
		return errors.New("iat missing or in the future")
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// serveOpenIDConfig is the issuer's discovery document.
func (s *Server) serveOpenIDConfig(w http.ResponseWriter) {
	writeJSON(w, map[string]any{
		"issuer":                                s.Issuer(),
		"jwks_uri":                              s.Issuer() + "/.well-known/jwks.json",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": signingAlgorithms,
	})
}

// serveJWKS publishes the public keys tokens are signed with.
func (s *Server) serveJWKS(w http.ResponseWriter) {
	enc := base64.RawURLEncoding
	// The uncompressed point: 0x04, then X and Y, 48 bytes each on P-384.
	pt, err := s.ec.PublicKey.Bytes()
	if err != nil || len(pt) != 97 {
		http.Error(w, "awsfake: EC public key: "+fmt.Sprint(err), http.StatusInternalServerError)
		return
	}
	x, y := pt[1:49], pt[49:]
	writeJSON(w, map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": s.rsaID,
			"n": enc.EncodeToString(s.rsa.N.Bytes()), "e": enc.EncodeToString(big.NewInt(int64(s.rsa.E)).Bytes())},
		{"kty": "EC", "use": "sig", "alg": "ES384", "kid": s.ecID, "crv": "P-384",
			"x": enc.EncodeToString(x), "y": enc.EncodeToString(y)},
	}})
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// writeQueryError answers in the Query protocol's error shape.
func writeQueryError(w http.ResponseWriter, status int, code, msg string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	type errorBody struct {
		Type, Code, Message string
	}
	type errorResponse struct {
		XMLName   xml.Name  `xml:"ErrorResponse"`
		Xmlns     string    `xml:"xmlns,attr"`
		Error     errorBody `xml:"Error"`
		RequestID string    `xml:"RequestId"`
	}
	writeXML(w, status, errorResponse{Xmlns: stsNamespace, Error: errorBody{typ, code, msg}, RequestID: newUUID()})
}

func writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", newUUID())
	w.WriteHeader(status)
	w.Write(append([]byte(xml.Header), b...))
}
