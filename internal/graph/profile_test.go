package graph

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/review"
)

var testTarget = review.Target{
	CatalogID:          "3c9f2b1e-8a4d-4e7f-9d2a-6b3e1c7f5a9d",
	ResourceID:         "15eeb4df-bd15-4d8b-9679-e75791dbc1d9",
	ReviewDefinitionID: "f5744a40-bca0-4506-a286-a8afac513d1c",
	ReviewInstanceID:   "ca24f9b9-5917-4971-9b5b-07aae0aa74e8",
	Source:             "Badge \"Access\" System",
}

func TestProfilesHaveTheContractsPathsAndOperations(t *testing.T) {
	tests := []struct {
		name, version, path string
		canList, canDelete  bool
	}{
		{"v1.0", "v1.0", "/identityGovernance/entitlementManagement/catalogs/C/resources/R/uploadSessions", true, true},
		{"beta", "beta", "/identityGovernance/catalogs/C/accessPackageResources/R/uploadSessions", true, true},
		{"beta-2025", "beta", "/identityGovernance/entitlementManagement/accessPackageCatalogs/C/accessPackageResources/R/uploadSessions", false, false},
	}
	for _, tc := range tests {
		p, err := ProfileByName(tc.name)
		if err != nil {
			t.Fatalf("ProfileByName(%q): %v", tc.name, err)
		}
		if p.Name != tc.name || p.Version != tc.version || p.CanList != tc.canList || p.CanDelete != tc.canDelete {
			t.Errorf("%s: got %+v", tc.name, p)
		}
		if got := p.CollectionPath("C", "R"); got != tc.path {
			t.Errorf("%s: CollectionPath = %s, want %s", tc.name, got, tc.path)
		}
	}
}

func TestProfileByNameRejectsUnknownNamingTheSetting(t *testing.T) {
	for _, name := range []string{"", "V1.0", "v2", "beta2025"} {
		_, err := ProfileByName(name)
		if err == nil || !strings.Contains(err.Error(), "GRAPH_API") || !strings.Contains(err.Error(), "beta-2025") {
			t.Errorf("ProfileByName(%q) = %v, want an error naming GRAPH_API and the choices", name, err)
		}
		if review.KindOf(err) != review.Invalid {
			t.Errorf("ProfileByName(%q): kind %v, want invalid", name, review.KindOf(err))
		}
	}
}

func TestCreateBodiesAreTheContractsShapes(t *testing.T) {
	v1 := map[string]any{
		"@odata.type": "#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession",
		"data": map[string]any{
			"@odata.type":        "#microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData",
			"reviewDefinitionId": testTarget.ReviewDefinitionID,
			"reviewInstanceId":   testTarget.ReviewInstanceID,
		},
	}
	b2025 := map[string]any{
		"source": testTarget.Source,
		"type":   "#microsoft.graph.accessReviewDataUploadTriggerCallbackData",
		"data": map[string]any{
			"@odata.type":            "#microsoft.graph.accessReviewResourceDataUploadSessionContextData",
			"accessReviewId":         testTarget.ReviewDefinitionID,
			"accessReviewInstanceId": testTarget.ReviewInstanceID,
		},
	}
	for name, want := range map[string]map[string]any{"v1.0": v1, "beta": v1, "beta-2025": b2025} {
		p, _ := ProfileByName(name)
		body, err := p.CreateBody(testTarget)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: body is not JSON: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: body\n%s\nwant %v", name, body, want)
		}
	}
}

func TestBeta2025CreateNeedsTheSource(t *testing.T) {
	p, _ := ProfileByName("beta-2025")
	tg := testTarget
	tg.Source = "  "
	_, err := p.CreateBody(tg)
	if err == nil || review.KindOf(err) != review.Invalid || !strings.Contains(err.Error(), "source") {
		t.Fatalf("CreateBody without source = %v, want an invalid error about the source", err)
	}
	// The other shapes do not send it, so do not need it.
	p, _ = ProfileByName("v1.0")
	if _, err := p.CreateBody(tg); err != nil {
		t.Fatalf("v1.0 CreateBody without source: %v", err)
	}
}
