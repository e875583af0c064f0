// Plugin versions live in gradle/libs.versions.toml. AGP 9 compiles an Android module's Kotlin itself
// (built-in Kotlin: no org.jetbrains.kotlin.android plugin); declaring the Kotlin JVM plugin here puts
// the catalog's Kotlin Gradle plugin on the build classpath, which both :core and AGP's built-in Kotlin
// then use (AGP alone would bring its minimum, KGP 2.2.10).
plugins {
    alias(libs.plugins.android.application) apply false
    alias(libs.plugins.kotlin.jvm) apply false
}
