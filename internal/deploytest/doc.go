// Package deploytest checks what gets deployed and run outside Go: the SAM
// template, the sample events and the Lambda builds. It has only tests; a
// change to template.yaml or events/ that breaks a promise of the product
// contract fails here before it reaches a stack.
package deploytest
