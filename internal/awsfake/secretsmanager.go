package awsfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// jsonTargetPrefix is the X-Amz-Target prefix of Secrets Manager.
const jsonTargetPrefix = "secretsmanager."

// serveJSON answers the JSON 1.1 protocol of Secrets Manager: POST / with
// X-Amz-Target: secretsmanager.<Action> and a JSON body.
func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	action, ok := strings.CutPrefix(target, jsonTargetPrefix)
	if !ok {
		action = target
	}
	c := Call{Action: action, Params: map[string]string{}}
	c.Region, c.Service, _ = credentialScope(r)
	fail := func(status int, code, msg string) {
		c.Status, c.Code = status, code
		s.record(c)
		writeJSONError(w, status, code, msg)
	}

	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-amz-json-1.1" {
		fail(http.StatusBadRequest, "SerializationException", "Content-Type must be application/x-amz-json-1.1")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		fail(http.StatusBadRequest, "SerializationException", "cannot read the request body: "+err.Error())
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		fail(http.StatusBadRequest, "SerializationException", "the request body is not a JSON object")
		return
	}
	for k, v := range in {
		c.Params[k] = fmt.Sprint(v)
	}
	if code, msg := s.checkSignature(r, "secretsmanager"); code != "" {
		fail(http.StatusBadRequest, code, msg)
		return
	}
	if !ok || action != "GetSecretValue" {
		fail(http.StatusBadRequest, "UnknownOperationException", "")
		return
	}
	if f := s.takeFault(action); f != nil {
		fail(f.Status, f.Code, f.Message)
		return
	}

	str := func(name string) (string, bool, bool) { // value, present, is a string
		v, present := in[name]
		sv, isStr := v.(string)
		return sv, present, isStr
	}
	id, present, isStr := str("SecretId")
	switch {
	case !present:
		fail(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null")
		return
	case !isStr || id == "" || len(id) > 2048:
		fail(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value at 'secretId' failed to satisfy constraint: Member must have length between 1 and 2048")
		return
	}
	versionID, hasVersionID, _ := str("VersionId")
	stage, hasStage, _ := str("VersionStage")
	if !hasVersionID && !hasStage {
		stage, hasStage = "AWSCURRENT", true
	}

	s.mu.Lock()
	sec := s.lookupLocked(id)
	var v *version
	if sec != nil {
		for _, cand := range sec.versions {
			if (!hasVersionID || cand.id == versionID) && (!hasStage || slices.Contains(cand.stages, stage)) {
				v = cand
			}
		}
	}
	var out map[string]any
	if v != nil {
		out = map[string]any{
			"ARN":           sec.arn,
			"Name":          sec.name,
			"VersionId":     v.id,
			"VersionStages": append([]string(nil), v.stages...),
			"CreatedDate":   float64(v.created.UnixMilli()) / 1000,
		}
		if v.str != nil {
			out["SecretString"] = *v.str
		} else {
			out["SecretBinary"] = base64.StdEncoding.EncodeToString(v.bin)
		}
	}
	s.mu.Unlock()

	switch {
	case sec == nil:
		fail(http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	case v == nil && hasVersionID:
		fail(http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: "+versionID)
		return
	case v == nil:
		fail(http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: "+stage)
		return
	}
	c.Status = http.StatusOK
	s.record(c)
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", newUUID())
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// lookupLocked finds a secret by name, full ARN, or partial ARN (the ARN
// without the six random characters), as SecretId accepts all three.
func (s *Server) lookupLocked(id string) *secret {
	if sec := s.secrets[id]; sec != nil {
		return sec
	}
	for _, sec := range s.secrets {
		if sec.arn == id || sec.arn[:len(sec.arn)-7] == id {
			return sec
		}
	}
	return nil
}

// checkSignature checks the SigV4 credential scope: present, for service,
// and for the fake's region. It returns the error code and message of the
// refusal (each service has its own code for a bad signature), or "".
func (s *Server) checkSignature(r *http.Request, service string) (code, msg string) {
	bad := "InvalidSignatureException"
	if service == "sts" {
		bad = "SignatureDoesNotMatch"
	}
	region, svc, ok := credentialScope(r)
	switch {
	case !ok:
		return "MissingAuthenticationToken", "Request is missing Authentication Token"
	case svc != service:
		return bad, fmt.Sprintf("Credential should be scoped to correct service: '%s'.", service)
	case region != s.opts.Region:
		return bad, fmt.Sprintf("Credential should be scoped to a valid region, not '%s'.", region)
	}
	return "", ""
}

// writeJSONError answers in the JSON 1.1 error shape: the code in
// X-Amzn-ErrorType and __type, the message in Message.
func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]string{"__type": code, "Message": msg})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.Header().Set("x-amzn-RequestId", newUUID())
	w.WriteHeader(status)
	w.Write(b)
}
