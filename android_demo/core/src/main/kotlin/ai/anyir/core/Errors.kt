package ai.anyir.core

/**
 * What the core refuses, each with one line for the user (the app shows `message` as is). The names
 * follow anyir_core/errors.py so a reader of both sides finds the same error for the same rule.
 */
open class AnyIRError(message: String) : Exception(message)

/** An image the tiled path cannot take (empty, wrong buffer size) or a model output of the wrong size. */
class ImageError(message: String) : AnyIRError(message)

/** A manifest the app does not understand: other schema, missing or ill-typed field, corrupt JSON. */
class ManifestError(message: String) : AnyIRError(message)
