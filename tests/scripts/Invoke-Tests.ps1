<#
.SYNOPSIS
Runs every *.Tests.ps1 beside this file with Pester and prints one "N passed, N failed, N skipped" line.
.DESCRIPTION
Called by run-pester.sh. Exit code 0 only when at least one test ran and none failed.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $PesterPath,
    [Parameter(Mandatory)] [string] $TestsPath,
    [Parameter(Mandatory)] [string] $ResultPath
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

Import-Module $PesterPath -Force
$config = New-PesterConfiguration
$config.Run.Path = @(Get-ChildItem -Path $TestsPath -Filter '*.Tests.ps1' | ForEach-Object FullName)
$config.Run.PassThru = $true
$config.Output.Verbosity = 'Detailed'
$config.TestResult.Enabled = $true
$config.TestResult.OutputFormat = 'NUnitXml'
$config.TestResult.OutputPath = $ResultPath

$result = Invoke-Pester -Configuration $config
if ($null -eq $result) { [Console]::Out.WriteLine("0 passed, 0 failed, 0 skipped"); exit 1 }
# Container-level failures (a file that does not parse, a BeforeAll that throws) are not test failures
# in Pester's counts, so they are added here: a broken file must not pass silently.
$failed = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
$line = '{0} passed, {1} failed, {2} skipped' -f $result.PassedCount, $failed, $result.SkippedCount
[Console]::Out.WriteLine($line)
if ($failed -gt 0 -or $result.PassedCount -eq 0) { exit 1 }
exit 0
