//! Linearizability checking (Wing–Gong search with Lowe's memoisation, after Porcupine).
