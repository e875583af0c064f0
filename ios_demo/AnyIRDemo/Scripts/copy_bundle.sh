#!/bin/sh
# Build phase of the AnyIRDemo target: copies the AnyIR bundle named by the ANYIR_BUNDLE build setting
# (a folder written by `anyir build`) into the app as AnyIRBundle/: manifest.json and ios/. Nothing else
# is trusted: the app checks each file's sha256 against the manifest before it loads an artifact.
set -eu
if [ -z "${ANYIR_BUNDLE:-}" ]; then
  echo "error: ANYIR_BUNDLE is not set: build with xcodebuild ... ANYIR_BUNDLE=/path/to/dist/<name>-<version> (a folder from \`anyir build\`)" >&2
  exit 1
fi
case "$ANYIR_BUNDLE" in
  /*) src="$ANYIR_BUNDLE" ;;
  *) src="$SRCROOT/$ANYIR_BUNDLE" ;;
esac
if [ ! -f "$src/manifest.json" ] || [ ! -d "$src/ios" ]; then
  echo "error: $src is not an AnyIR bundle for iOS (it needs manifest.json and ios/)" >&2
  exit 1
fi
# the manifest's own checksum (written last by `anyir build`): its file table covers every other file
if ! (cd "$src" && shasum -a 256 -c manifest.json.sha256 >/dev/null 2>&1); then
  echo "error: $src/manifest.json does not match manifest.json.sha256 (missing, or the manifest changed): rebuild the bundle" >&2
  exit 1
fi
dest="$TARGET_BUILD_DIR/$UNLOCALIZED_RESOURCES_FOLDER_PATH/AnyIRBundle"
rm -rf "$dest"
mkdir -p "$dest"
cp "$src/manifest.json" "$dest/manifest.json"
cp -R "$src/ios" "$dest/ios"
echo "copied the AnyIR bundle $(basename "$src") into the app"
