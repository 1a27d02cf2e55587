//! stella
