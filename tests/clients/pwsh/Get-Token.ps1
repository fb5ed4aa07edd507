# Gets one managed-identity token the way a PowerShell script on a VM does — Invoke-RestMethod against IMDS with
# Metadata: true, no SDK — and prints one JSON line:
#   {"ok":true,"token":"...","expiresOn":"<ISO 8601>"}                    exit 0
#   {"ok":false,"errorType":"...","message":"...","status":N}             exit 1
# The endpoint is AZURE_POD_IDENTITY_AUTHORITY_HOST when the test runner sets it, otherwise http://169.254.169.254 —
# which the runner allows only inside a test-made network namespace where that address is local.
param(
    [Parameter(Mandatory)] [string] $Resource,
    [string] $ClientId,
    [string] $ObjectId,
    [string] $ResourceId
)

$ErrorActionPreference = 'Stop'
$selectors = @(@{ client_id = $ClientId; object_id = $ObjectId; msi_res_id = $ResourceId }.GetEnumerator() | Where-Object Value)
if ($selectors.Count -gt 1) {
    [Console]::Out.WriteLine((@{ ok = $false; errorType = 'ArgumentError'; message = 'Give at most one of -ClientId, -ObjectId, -ResourceId' } | ConvertTo-Json -Compress))
    exit 2
}

$endpoint = if ($env:AZURE_POD_IDENTITY_AUTHORITY_HOST) { $env:AZURE_POD_IDENTITY_AUTHORITY_HOST.TrimEnd('/') } else { 'http://169.254.169.254' }
$query = "api-version=2018-02-01&resource=$([uri]::EscapeDataString($Resource))"
foreach ($selector in $selectors) { $query += "&$($selector.Key)=$([uri]::EscapeDataString($selector.Value))" }

try {
    $answer = Invoke-RestMethod -Method Get -Uri "$endpoint/metadata/identity/oauth2/token?$query" -Headers @{ Metadata = 'true' } -TimeoutSec 20
    $expiresOn = [DateTimeOffset]::FromUnixTimeSeconds([long]$answer.expires_on).ToString('O')
    [Console]::Out.WriteLine((@{ ok = $true; token = $answer.access_token; expiresOn = $expiresOn } | ConvertTo-Json -Compress))
    exit 0
}
catch {
    $status = if ($_.Exception.Response) { [int]$_.Exception.Response.StatusCode } else { $null }
    $message = if ($_.ErrorDetails.Message) { $_.ErrorDetails.Message } else { $_.Exception.Message }
    [Console]::Out.WriteLine((@{ ok = $false; errorType = $_.Exception.GetType().FullName; message = $message; status = $status } | ConvertTo-Json -Compress))
    exit 1
}
