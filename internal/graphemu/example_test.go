package graphemu_test

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/byodrop/byodrop/internal/graphemu"
)

// Start an emulator, get a token, create a session the v1.0 way and look
// at what the emulator recorded.
func ExampleStart() {
	s, err := graphemu.Start(graphemu.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	s.Inject(graphemu.Fault{Op: "create", Status: http.StatusServiceUnavailable, RetryAfter: "1"})

	url := s.URL() + "/v1.0/identityGovernance/entitlementManagement/catalogs/6a1f8c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b" +
		"/resources/7b2a9d3f-4c5e-4f60-9bac-1d2e3f4a5b6c/uploadSessions"
	body := `{"@odata.type":"#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession",
	"data":{"@odata.type":"#microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData",
	"reviewDefinitionId":"8c3bae40-5d6f-4071-acbd-2e3f4a5b6c7d","reviewInstanceId":"9d4cbf51-6e70-4182-bdce-3f4a5b6c7d8e"}}`
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.IssueToken())
		req.Header.Set("Content-Type", "application/json")
		res, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		res.Body.Close()
		fmt.Printf("%d Retry-After=%q\n", res.StatusCode, res.Header.Get("Retry-After"))
	}
	for _, v := range s.Sessions() {
		fmt.Println(v.Profile, v.Status, v.ReviewInstanceID)
	}
	// Output:
	// 503 Retry-After="1"
	// 201 Retry-After=""
	// v1.0 active 9d4cbf51-6e70-4182-bdce-3f4a5b6c7d8e
}
