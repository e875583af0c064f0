import java.security.MessageDigest

// The Android app. Its Kotlin is compiled by AGP 9's built-in Kotlin (no kotlin-android plugin).
plugins {
    alias(libs.plugins.android.application)
}

android {
    namespace = "ai.anyir.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "ai.anyir.demo"
        // LiteRT 2.3.0's AARs declare minSdk 24 and executorch-android 23, so 24 is the floor the runtimes
        // set; 29 (Android 10) is this app's choice: saving to MediaStore with RELATIVE_PATH/IS_PENDING
        // needs no storage permission from 29 on, which keeps the untested Android layer free of a
        // second, permission-based save path.
        minSdk = 29
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            // executorch-android ships arm64-v8a and x86_64 only (LiteRT has 32-bit builds too): a 32-bit
            // APK would load no .pte, so the app is 64-bit only (phones: arm64-v8a; emulators: x86_64)
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
        // the runtime versions this APK carries, from the version catalog, for RuntimeCheck
        buildConfigField("String", "EXECUTORCH_VERSION", "\"${libs.versions.executorch.get()}\"")
        buildConfigField("String", "LITERT_VERSION", "\"${libs.versions.litert.get()}\"")
    }

    buildFeatures {
        buildConfig = true
    }

    buildTypes {
        release {
            isMinifyEnabled = false  // the runtimes reach their Java classes over JNI: no shrinking without keep rules
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    androidResources {
        // models are copied out of the APK once; stored uncompressed they copy without inflating
        noCompress += listOf("pte", "tflite")
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.executorch.android)
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.kotlinx.coroutines.android)
    implementation(libs.androidx.activity.ktx)
    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.lifecycle.runtime.ktx)
}

/**
 * Copies a bundle's manifest.json, android/ folder and test-vector photo into generated assets under
 * `anyir/`, after checking every Android artifact's size and sha256 against the manifest, so an APK never
 * carries a model its manifest does not describe. Without -PanyirBundle the app is built with no bundle
 * (the benchmark mode can still run a pushed one via the bundle_dir extra).
 */
abstract class PackAnyirBundle : DefaultTask() {
    @get:Input
    @get:Optional
    abstract val bundlePath: Property<String>

    @get:InputFiles
    @get:PathSensitive(PathSensitivity.RELATIVE)
    abstract val bundleFiles: ConfigurableFileCollection

    @get:OutputDirectory
    abstract val outputDir: DirectoryProperty

    @TaskAction
    fun pack() {
        val out = outputDir.get().asFile
        out.deleteRecursively()
        val dest = File(out, "anyir")
        dest.mkdirs()
        if (!bundlePath.isPresent) {
            logger.warn("anyir: no bundle packed (pass -PanyirBundle=../dist/<name>-<version>); the app will ask for one")
            return
        }
        val root = File(bundlePath.get())
        val manifestFile = File(root, "manifest.json")
        if (!manifestFile.isFile) throw GradleException("anyirBundle=$root: no manifest.json there (run `anyir build` first)")
        // the manifest's own checksum (written last by `anyir build`): its file table covers every other file
        val shaFile = File(root, "manifest.json.sha256")
        val manifestSha = MessageDigest.getInstance("SHA-256").digest(manifestFile.readBytes()).joinToString("") { "%02x".format(it) }
        if (!shaFile.isFile || shaFile.readText().take(64) != manifestSha) {
            throw GradleException("$manifestFile: does not match manifest.json.sha256 (missing, or the manifest changed): rebuild the bundle")
        }
        @Suppress("UNCHECKED_CAST")
        val manifest = groovy.json.JsonSlurper().parse(manifestFile) as Map<String, Any?>
        if (manifest["schema"] != "anyir-mobile/manifest/1") {
            throw GradleException("$manifestFile: schema ${manifest["schema"]} is not anyir-mobile/manifest/1")
        }
        @Suppress("UNCHECKED_CAST")
        val artifacts = (manifest["artifacts"] as List<Map<String, Any?>>)
        var packed = 0
        for (a in artifacts) {
            @Suppress("UNCHECKED_CAST")
            val rel = (a["paths"] as Map<String, String>)["android"] ?: continue
            val src = File(root, rel)
            if (!src.isFile) throw GradleException("${a["id"]}: $src is missing from the bundle")
            val sha = src.inputStream().use { input ->
                val md = MessageDigest.getInstance("SHA-256")
                val buf = ByteArray(1 shl 16)
                while (true) {
                    val n = input.read(buf)
                    if (n < 0) break
                    md.update(buf, 0, n)
                }
                md.digest().joinToString("") { "%02x".format(it) }
            }
            if (sha != a["sha256"] || src.length() != (a["bytes"] as Number).toLong()) {
                throw GradleException("${a["id"]}: $src is not the file the manifest names (sha256 $sha): rebuild the bundle")
            }
            src.copyTo(File(dest, rel), overwrite = true)
            packed++
        }
        if (packed == 0) throw GradleException("$root: the bundle has no Android artifact")
        manifestFile.copyTo(File(dest, "manifest.json"), overwrite = true)
        val photo = File(root, "testvectors/photo.png")
        if (photo.isFile) photo.copyTo(File(dest, "testvectors/photo.png"), overwrite = true)
        logger.lifecycle("anyir: packed ${manifest["name"]}-${manifest["version"]}: $packed Android artifacts")
    }
}

// -PanyirBundle is relative to android_demo/ (the Gradle root) unless absolute
val androidDemoDir: File = rootDir
val anyirBundleDir = providers.gradleProperty("anyirBundle").map { p ->
    File(p).let { if (it.isAbsolute) it else File(androidDemoDir, p) }.normalize()
}

val packAnyirBundle = tasks.register<PackAnyirBundle>("packAnyirBundle") {
    bundlePath.set(anyirBundleDir.map { it.path })
    bundleFiles.from(anyirBundleDir.map { d ->
        listOf(File(d, "manifest.json"), File(d, "android"), File(d, "testvectors/photo.png")).filter { it.exists() }
    }.orElse(emptyList()))
    outputDir.set(layout.buildDirectory.dir("generated/anyirBundle"))
}

androidComponents {
    onVariants { variant ->
        variant.sources.assets?.addGeneratedSourceDirectory(packAnyirBundle, PackAnyirBundle::outputDir)
    }
}
