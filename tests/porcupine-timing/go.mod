module distlab/porcupine-timing

go 1.16

require github.com/anishathalye/porcupine v1.3.0

// Go modules cannot reach GitHub from the machine these figures were taken on: the
// checker is used from a local checkout of commit 55508eb (see README.md).
replace github.com/anishathalye/porcupine => ../../target/porcupine-src
