package deploytest

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/byodrop/byodrop/internal/entra"
)

// evalCondition evaluates a template condition for the given parameter
// values: the subset of condition functions the template uses.
func evalCondition(t *testing.T, tpl map[string]any, v any, params map[string]string) bool {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("condition %v is not a single function", v)
	}
	for fn, arg := range m {
		switch fn {
		case "Condition":
			return evalCondition(t, tpl, mustGet(t, tpl, "Conditions", str(arg)), params)
		case "Fn::Not":
			return !evalCondition(t, tpl, list(arg)[0], params)
		case "Fn::And", "Fn::Or":
			and := fn == "Fn::And"
			for _, c := range list(arg) {
				if evalCondition(t, tpl, c, params) != and {
					return !and
				}
			}
			return and
		case "Fn::Equals":
			args := list(arg)
			return value(t, args[0], params) == value(t, args[1], params)
		}
		t.Fatalf("condition function %s not supported by this test", fn)
	}
	return false
}

func value(t *testing.T, v any, params map[string]string) string {
	t.Helper()
	if r, ok := Get(v, "Ref"); ok {
		p, ok := params[str(r)]
		if !ok {
			t.Fatalf("parameter %v not given", r)
		}
		return p
	}
	return str(v)
}

// activeActions returns the actions a function's policy grants for the
// given parameter values.
func activeActions(t *testing.T, tpl map[string]any, fn string, params map[string]string) []string {
	var out []string
	for _, s := range statements(t, tpl, fn) {
		if s.cond != "" && !evalCondition(t, tpl, map[string]any{"Condition": s.cond}, params) {
			continue
		}
		for _, a := range list(s.st["Action"]) {
			out = append(out, str(a))
		}
	}
	return out
}

func TestTemplateGrantsEachCredentialModeWhatItNeeds(t *testing.T) {
	tpl := loadTemplate(t)
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/graph-AbCdEf"
	const key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	tests := []struct {
		credential, secretARN, keyARN   string
		readsSecret, callsSTS, decrypts bool
	}{
		{"secret", arn, "", true, false, false},
		{"certificate", arn, "", true, false, false},
		// A secret under a customer-managed key: that key, through Secrets Manager.
		{"secret", arn, key, true, false, true},
		{"certificate", arn, key, true, false, true},
		{"aws-federation", "", "", false, true, false},
		// Switched to federation with the old ARN and key still set: the
		// secret is no longer readable, nor the key usable.
		{"aws-federation", arn, key, false, true, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s, ARN %q, key %q", tc.credential, tc.secretARN, tc.keyARN), func(t *testing.T) {
			params := map[string]string{"GraphCredential": tc.credential, "ClientSecretArn": tc.secretARN, "SecretKmsKeyArn": tc.keyARN}
			for _, fn := range functions {
				actions := activeActions(t, tpl, fn, params)
				if got := slices.Contains(actions, "kms:Decrypt"); got != tc.decrypts {
					t.Errorf("%s: kms:Decrypt granted %v, want %v", fn, got, tc.decrypts)
				}
				if got := slices.Contains(actions, "secretsmanager:GetSecretValue"); got != tc.readsSecret {
					t.Errorf("%s: secretsmanager:GetSecretValue granted %v, want %v", fn, got, tc.readsSecret)
				}
				if got := slices.Contains(actions, "sts:GetWebIdentityToken"); got != tc.callsSTS {
					t.Errorf("%s: sts:GetWebIdentityToken granted %v, want %v", fn, got, tc.callsSTS)
				}
			}
		})
	}
}

// The policy must allow exactly the request entra makes: IAM would refuse
// a longer lifetime or another audience or algorithm at run time.
func TestTemplateFederationPolicyMatchesWhatTheFunctionsAsk(t *testing.T) {
	tpl := loadTemplate(t)
	want := map[string]any{
		"ForAllValues:StringEquals": map[string]any{"sts:IdentityTokenAudience": entra.FederationAudience},
		"Null":                      map[string]any{"sts:IdentityTokenAudience": "false"},
		"StringEquals":              map[string]any{"sts:SigningAlgorithm": entra.FederationSigningAlgorithm},
		"NumericLessThanEquals":     map[string]any{"sts:DurationSeconds": strconv.Itoa(entra.WebIdentityTokenSeconds)},
	}
	for _, fn := range functions {
		found := 0
		for _, s := range statements(t, tpl, fn) {
			if !slices.Contains(list(s.st["Action"]), any("sts:GetWebIdentityToken")) {
				continue
			}
			found++
			if got := list(s.st["Action"]); len(got) != 1 {
				t.Errorf("%s: sts:GetWebIdentityToken shares its statement with %v", fn, got)
			}
			if r := list(s.st["Resource"]); len(r) != 1 || str(r[0]) != "*" {
				t.Errorf("%s: resource %v, want * (the action has no resource type)", fn, r)
			}
			if got := s.st["Condition"]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: condition %v, want %v", fn, got, want)
			}
		}
		if found != 1 {
			t.Errorf("%s: %d sts:GetWebIdentityToken statements, want 1", fn, found)
		}
	}
}

func TestTemplateOutputsTheFederatedSubjects(t *testing.T) {
	tpl := loadTemplate(t)
	for out, role := range map[string]string{
		"IngestFunctionRoleArn":   "IngestFunctionRole",
		"FinalizeFunctionRoleArn": "FinalizeFunctionRole",
		"DiscoverFunctionRoleArn": "DiscoverFunctionRole",
	} {
		if got := mustGet(t, tpl, "Outputs", out, "Value"); !reflect.DeepEqual(got, getAtt(role, "Arn")) {
			t.Errorf("output %s = %v, want the ARN of %s (SAM's role of the function)", out, got, role)
		}
		if c := str(mustGet(t, tpl, "Outputs", out, "Condition")); c != "UsesAwsFederation" {
			t.Errorf("output %s under condition %q, want UsesAwsFederation", out, c)
		}
	}
}
