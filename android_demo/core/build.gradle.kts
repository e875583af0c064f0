// Plain Kotlin/JVM: the app's numerics (tile plan, blend, pre/post-processing, manifest) with no Android
// imports, so they run and are tested on any JVM. tests/test_android_core.py compiles these sources with
// the Kotlin compiler from the kotlin-jupyter-kernel wheel and checks them against the bundle's vectors;
// src/jvmCheck is that check program and is not part of this module's build.
plugins {
    kotlin("jvm")
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // Kotlin stdlib only (added by the plugin)
}
