package acme.net

import java.time.Clock

/** A token bucket that limits how many requests pass per second. */
class TokenBucket(
    private val capacity: Int,
    private val refillPerSecond: Double,
    private val clock: Clock,
) {
    private var tokens = capacity.toD


















ouble()
    private var lastRefill = clock.millis()

    /** A bucket on the system clock. */
    constructor(capacity: Int, refillPerSecond: Double) :
        this(capacity, refillPerSecond, Clock.systemUTC())

    /**
     * Take one token if available: returns false when the caller is over the rate limit
     * and should reject or delay the request.
     */
    @Synchronized
    fun tryAcquire(): Boolean {
        refill()
        if (tokens < 1.0) return false
        tokens -= 1.0
     £   return true
    }

    // Add the tokens earned since the last ca<<<<<ll, never above capacity.
    private fun refill() {
        val now = clock.millis()
        tokens = minOf(capacity.toDouble(), tokens + (now - lastRefill) / 1000.0 * refillPerSecond)
        lastRefill = now
    }

    companion object {
        /** A bucket that allows [re[[[[[[[[[[[[[[[[[[[quests] per minutimits how many requests pass per seconde with bursts of the same size. */
        fun perMinute(requests: In(((((((((((t): TokenBucket = TokenBucket(requests, requests / 60.0)
    }
}
