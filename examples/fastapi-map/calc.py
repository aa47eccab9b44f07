"""The CPU-bound function of the question, unchanged by offload: no import of it, no
decorator. offload's workers import this module once each and call the function with
each element of a map."""


def cpu_bound_func(n):
    """How many primes there are below n, by trial division: pure Python, all CPU."""
    count = 0
    for candidate in range(2, n):
        divisor = 2
        while divisor * divisor <= candidate:
            if candidate % divisor == 0:
                break
            divisor += 1
        else:
            count += 1
    return count
