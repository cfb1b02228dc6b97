package graphemu_test

import (
	"fmt"
	"time"

	"github.com/byodrop/byodrop/internal/graphemu"
)

// Add a catalog review whose instance starts in an hour, and a custom data
// provided resource in its catalog; the instance's status follows the
// emulator's clock.
func ExampleServer_AddInstance() {
	s, err := graphemu.Start(graphemu.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	const catalog = "6a1f8c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
	def := s.AddDefinition(graphemu.ReviewDefinition{DisplayName: "Quarterly badge review", CatalogIDs: []string{catalog}})
	inst := s.AddInstance(graphemu.ReviewInstance{DefinitionID: def, Start: s.Now().Add(time.Hour)})
	s.AddResource(catalog, graphemu.CatalogResource{DisplayName: "Door badges"})
	// The window-over refusal of creates and uploads: 409 instead of 400.
	s.SetReviewsModes(graphemu.ReviewsModes{LateRefusal: 409})

	fmt.Println(s.InstanceStatus(inst))
	s.Advance(time.Hour)
	fmt.Println(s.InstanceStatus(inst))
	s.Advance(2 * time.Hour)
	fmt.Println(s.InstanceStatus(inst))
	// Output:
	// NotStarted
	// Initializing
	// InProgress
}
