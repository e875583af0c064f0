// AnyIR Android demo: `:core` is the plain-Kotlin/JVM core (tiling, blend, pre/post-processing, manifest),
// `:app` the Android app around it (pickers, runtimes, UI, benchmark mode).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

plugins {
    // lets `kotlin { jvmToolchain(17) }` in :core fetch a JDK 17 where the machine has none
    id("org.gradle.toolchains.foojay-resolver-convention") version "1.0.0"
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()        // com.google.ai.edge.litert (LiteRT), androidx
        mavenCentral()  // org.pytorch:executorch-android and its com.facebook.fbjni / soloader
    }
}

rootProject.name = "anyir-android-demo"
include(":core", ":app")
