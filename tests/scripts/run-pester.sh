#!/usr/bin/env bash
# Runs the Pester tests for docker/scripts/*.ps1 under real pwsh on Linux.
# Installs pwsh (dotnet global tool) and Pester (NuGet PackageDownload) when missing; both steps are
# idempotent and skip the network when the tools are already there.
# Prints exactly one closing line "N passed, N failed, N skipped" and exits non-zero on any failure
# or when no test ran.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tools="$here/.tools"
pwsh_version="7.6.9"
pester_version="6.2.0"

export PATH="$PATH:$HOME/.dotnet/tools"
export POWERSHELL_TELEMETRY_OPTOUT=1 POWERSHELL_UPDATECHECK=Off DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if ! command -v pwsh >/dev/null 2>&1; then
  echo "run-pester: installing PowerShell $pwsh_version (dotnet global tool)" >&2
  dotnet tool install --global PowerShell --version "$pwsh_version" >&2
fi

pester_psd1="$tools/pkgs/pester/$pester_version/tools/Pester.psd1"
if [[ ! -f "$pester_psd1" ]]; then
  echo "run-pester: downloading Pester $pester_version from NuGet" >&2
  mkdir -p "$tools"
  # Empty props files stop MSBuild from importing the repo's central package management and
  # analyzer settings into this throw-away download project.
  echo '<Project />' > "$tools/Directory.Build.props"
  echo '<Project />' > "$tools/Directory.Build.targets"
  echo '<Project />' > "$tools/Directory.Packages.props"
  cat > "$tools/download.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Pester" Version="[$pester_version]" /></ItemGroup>
</Project>
XML
  dotnet restore "$tools/download.csproj" --packages "$tools/pkgs" >&2
fi

mkdir -p "$repo/artifacts/test-results"
cd "$repo"
# Native netsh/route/docker are mocked in every test; unshare -n (a namespace with only lo) makes
# sure a mistake in a test can still never reach the network. Fall back when unshare is unavailable.
runner=()
if [[ "$(id -u)" == "0" ]] && unshare -n true 2>/dev/null; then runner=(unshare -n); fi

set +e
"${runner[@]}" pwsh -NoProfile -NonInteractive -File "$here/Invoke-Tests.ps1" \
  -PesterPath "$pester_psd1" -TestsPath "$here" -ResultPath "$repo/artifacts/test-results/pester.xml"
rc=$?
set -e
exit $rc
