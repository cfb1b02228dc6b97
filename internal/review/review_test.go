package review

import (
	"errors"
	"fmt"
	"testing"
)

func TestIsGUID(t *testing.T) {
	for s, want := range map[string]bool{
		"6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c":   true,
		"6B2A4C1E-7D3F-4E8A-9B5C-0D1E2F3A4B5C":   true,
		"6b2a4c1e7d3f4e8a9b5c0d1e2f3a4b5c":       false,
		"{6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c}": false,
		"6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5g":   false,
		"6b2a4c1e-7d3f-4e8a-9b5c_0d1e2f3a4b5c":   false,
		"../../x":                                false,
		"":                                       false,
	} {
		if IsGUID(s) != want {
			t.Errorf("IsGUID(%q) = %v, want %v", s, !want, want)
		}
	}
}

func TestTargetValidateNamesTheBadId(t *testing.T) {
	good := Target{CatalogID: "6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c", ResourceID: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
		ReviewDefinitionID: "11111111-2222-4333-8444-555555555555", ReviewInstanceID: "99999999-8888-4777-8666-555555555555"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.ResourceID = "x/y"
	err := bad.Validate()
	if KindOf(err) != Invalid || err.Error() != `resourceId is not a GUID: "x/y"` {
		t.Fatalf("Validate = %v (kind %v)", err, KindOf(err))
	}
}

type kinded struct{}

func (kinded) Error() string { return "k" }
func (kinded) Kind() Kind    { return Gone }

func TestKindOfFollowsTheChain(t *testing.T) {
	cause := errors.New("cause")
	tests := []struct {
		err       error
		kind      Kind
		retryable bool
	}{
		{cause, Internal, true},
		{Errorf(Invalid, "bad: %w", cause), Invalid, false},
		{fmt.Errorf("outer: %w", Errorf(Transient, "slow")), Transient, true},
		{fmt.Errorf("outer: %w", kinded{}), Gone, false},
		{Errorf(Conflict, "two"), Conflict, false},
	}
	for _, tt := range tests {
		if KindOf(tt.err) != tt.kind || IsRetryable(tt.err) != tt.retryable {
			t.Errorf("%v: kind %v retryable %v, want %v %v", tt.err, KindOf(tt.err), IsRetryable(tt.err), tt.kind, tt.retryable)
		}
	}
	if err := Errorf(Invalid, "bad: %w", cause); !errors.Is(err, cause) || err.Error() != "bad: cause" {
		t.Errorf("Errorf keeps the cause reachable and the message whole: %v", err)
	}
}

func TestFieldErrorSaysWhereFirst(t *testing.T) {
	for _, tt := range []struct {
		fe   FieldError
		want string
	}{
		{FieldError{Line: 7, Column: "PrincipalId", Message: `not a GUID: "bob"`}, `line 7, column PrincipalId: not a GUID: "bob"`},
		{FieldError{Line: 3, Message: "an unclosed quote"}, "line 3: an unclosed quote"},
		{FieldError{Column: "PermissionId", Message: "missing from the header"}, "column PermissionId: missing from the header"},
		{FieldError{Message: "the file is empty"}, "the file is empty"},
	} {
		if got := tt.fe.Error(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.fe, got, tt.want)
		}
	}
}
